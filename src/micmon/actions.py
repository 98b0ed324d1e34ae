"""What happens on an event: print, run a command, POST a webhook, publish to MQTT, save a clip.

Every action runs on its own thread from a bounded queue (`ActionRunner`): a slow command, a dead
webhook or a broker that is down is logged and retried a bounded number of times, and never blocks
or crashes the listening loop. `Actions` fans events out to the runners; when a `ClipAction` is
present, each event goes through it first so the clip's path is in the event the others see.

Example::

    actions = Actions([PrintAction(json_lines=True), WebhookAction("http://hub.local/hook")])
    actions.submit(event)
    actions.close()          # flushes the queues
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import numpy as np

from micmon._io import atomic_path, check_writable_dir, describe_os_error, expand_path
from micmon.detect import Event
from micmon.errors import MicmonError, ParameterError

log = logging.getLogger(__name__)

#: Jobs an action may have waiting before the oldest is dropped.
DEFAULT_QUEUE_SIZE = 100
#: Extra attempts after a failure.
DEFAULT_RETRIES = 3
#: Seconds before the first retry; doubled on each further retry.
DEFAULT_RETRY_DELAY = 1.0
#: Longest wait between retries.
MAX_RETRY_DELAY = 30.0
DEFAULT_COMMAND_TIMEOUT = 30.0
DEFAULT_WEBHOOK_TIMEOUT = 10.0
DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883
#: Seconds between MQTT reconnection attempts grow from 1 up to this.
MQTT_MAX_RECONNECT_DELAY = 30
#: QoS 1 messages paho keeps while the broker is away; further events are dropped with a warning.
MQTT_MAX_QUEUED = 1000
MQTT_KEEPALIVE = 30
#: Seconds between two publications of the input level at most.
MQTT_LEVEL_INTERVAL = 5.0
#: Object ids of the Home Assistant event entity and level sensor (labels use their own name).
MQTT_DETECTION_ID = "detection"
MQTT_LEVEL_ID = "input_level"
CLIP_FORMATS = ("mp3", "wav")
_TOPIC_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


class ActionError(MicmonError):
    """An action failed (it is logged, retried when `retryable`; listening goes on)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        #: False when running the action again would give the same answer (or do harm).
        self.retryable = retryable


@dataclass(frozen=True)
class ClipAudio:
    """Audio around an event: int16 interleaved samples from `start` seconds (stream time)."""

    samples: np.ndarray
    sample_rate: int
    channels: int
    start: float

    @property
    def duration(self) -> float:
        """Seconds of audio held."""
        return len(self.samples) / self.channels / self.sample_rate


class Action:
    """Base class: `handle` one event (raise to have it retried); `open`/`close` hold resources."""

    name = "action"
    #: Whether a failure may be retried (False for actions where a repeat would do harm).
    retry = True
    #: Extra attempts after a failure for this action (None: the runner's default).
    retries: int | None = None

    def open(self) -> None:
        """Acquire resources (connections); called once on the action's thread before any event."""

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """Act on `event`; return it (possibly with more data, e.g. a clip path)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; called once after the last event."""

    def audio_status(self, healthy: bool, level_dbfs: float | None) -> None:
        """Hear whether audio flows and its level, after each window (listening thread: never block)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


# -- print ---------------------------------------------------------------------------------------
def format_event(event: Event) -> str:
    """Return a one-line human description of `event`."""
    if event.kind == "start":
        return f"{event.start_time} START {event.label} (confidence {event.confidence:.2f})"
    clip = f", clip {event.clip}" if event.clip else ""
    return (
        f"{event.end_time} END   {event.label} after {event.duration or 0.0:.1f} s "
        f"(peak {event.peak:.2f}, mean {event.mean:.2f}{clip})"
    )


class PrintAction(Action):
    """Write a human line or a JSON line per event to a stream (stdout by default)."""

    name = "print"
    retry = False

    def __init__(
        self,
        *,
        json_lines: bool = False,
        stream: IO[str] | None = None,
        formatter: Callable[[Event], str] | None = None,
    ) -> None:
        self.json_lines = json_lines
        self.stream = stream
        self.formatter = formatter or format_event

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """Write the event and flush, so a pipe reader sees it at once."""
        stream = self.stream or sys.stdout
        stream.write((event.to_json() if self.json_lines else self.formatter(event)) + "\n")
        stream.flush()
        return event


# -- command -------------------------------------------------------------------------------------
class CommandAction(Action):
    """Run a program per event: no shell, event in MICMON_* variables and as JSON on stdin.

    ``MICMON_EVENT`` (start/end), ``MICMON_LABEL``, ``MICMON_CONFIDENCE``, ``MICMON_CLIP`` (path or
    empty), ``MICMON_TIME`` (ISO 8601). Event data is never put on the command line.

    The program runs in its own session (process group): on a timeout the whole group is killed,
    so the children of a shell script do not outlive it. Only a failure to start the program
    (fork or exec failing) is retried; a non-zero exit status is the program's answer and a
    timeout would most likely time out again, so neither runs the command a second time.
    """

    name = "command"

    def __init__(
        self,
        command: Sequence[str] | str,
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        events: Sequence[str] = ("start", "end"),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        argv = [command] if isinstance(command, str) else list(command)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ParameterError(
                f"command: expected a program and its arguments as a list, got {command!r}",
                parameter="command",
                value=command,
            )
        if shutil.which(argv[0]) is None:
            raise ParameterError(
                f"command: {argv[0]!r} is not an executable file or a program on PATH", parameter="command"
            )
        if not timeout > 0:
            raise ParameterError(
                f"timeout: must be > 0 seconds, got {timeout!r}", parameter="timeout", value=timeout
            )
        self.argv = argv
        self.timeout = float(timeout)
        self.events = _check_kinds(events)
        self.env = dict(env or {})
        self.cwd = cwd
        self.name = f"command {Path(argv[0]).name}"

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """Run the program; raise ActionError on a non-zero exit or a timeout."""
        if event.kind not in self.events:
            return event
        env = {
            **os.environ,
            **self.env,
            "MICMON_EVENT": event.kind,
            "MICMON_LABEL": event.label,
            "MICMON_CONFIDENCE": f"{event.confidence:.4f}",
            "MICMON_CLIP": event.clip or "",
            "MICMON_TIME": event.to_dict()["time"],
        }
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                text=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionError(f"{self.argv[0]}: cannot run it ({exc.strerror})") from None
        try:
            _out, err = proc.communicate(event.to_json() + "\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ActionError(
                f"{self.argv[0]}: still running after {self.timeout:g} s; killed it and its children",
                retryable=False,
            ) from None
        finally:
            if proc.returncode is None:  # interrupted some other way: leave nothing behind
                _kill_group(proc)
        if proc.returncode != 0:
            last = (err or "").strip().splitlines()[-1:] or [""]
            raise ActionError(
                f"{self.argv[0]}: exit code {proc.returncode} {last[0]}".rstrip(), retryable=False
            )
        return event


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill `proc`'s whole process group (it leads its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=5.0)
    except (subprocess.TimeoutExpired, ValueError, OSError):  # pragma: no cover - a stuck pipe
        proc.kill()


def _check_kinds(events: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(events)
    if not kinds or any(k not in ("start", "end") for k in kinds):
        raise ParameterError(
            f"events: expected a list of 'start' and/or 'end', got {events!r}",
            parameter="events",
            value=events,
        )
    return kinds


# -- webhook -------------------------------------------------------------------------------------
class WebhookAction(Action):
    """HTTP POST of the event JSON to a URL, with a timeout (retries come from the runner)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        events: Sequence[str] = ("start", "end"),
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ParameterError(
                f"url: expected an http:// or https:// URL, got {url!r}", parameter="url", value=url
            )
        if not timeout > 0:
            raise ParameterError(
                f"timeout: must be > 0 seconds, got {timeout!r}", parameter="timeout", value=timeout
            )
        self.url = url
        self.timeout = float(timeout)
        self.headers = {"Content-Type": "application/json", "User-Agent": "micmon", **dict(headers or {})}
        self.events = _check_kinds(events)
        self.name = f"webhook {parts.hostname}"

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """POST the event; raise ActionError on a network error or an HTTP error status."""
        if event.kind not in self.events:
            return event
        request = urllib.request.Request(
            self.url, data=event.to_json().encode("utf-8"), headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise ActionError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ActionError(f"{self.url}: {reason}") from None
        return event


# -- MQTT ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrokerAddress:
    """Where an MQTT broker is: host, port, TLS, optional credentials from the URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...`` (TLS); bare hosts work too."""
    if not isinstance(url, str) or not url.strip():
        raise ParameterError(
            f"broker: expected a URL such as mqtt://localhost:1883, got {url!r}",
            parameter="broker",
            value=url,
        )
    text = url.strip() if "://" in url else f"mqtt://{url.strip()}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ParameterError(
            f"broker: {url!r} is not a valid URL ({exc}); use mqtt://host:1883", parameter="broker"
        ) from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ParameterError(
            f"broker: unknown scheme {parts.scheme!r} in {url!r}; use mqtt:// or mqtts:// (TLS)",
            parameter="broker",
        )
    if not parts.hostname:
        raise ParameterError(f"broker: {url!r} has no host name; use mqtt://host:1883", parameter="broker")
    if parts.path not in ("", "/") or parts.query:
        raise ParameterError(
            f"broker: {url!r} has a path or query; give only "
            "mqtt://host:port (the topic is a separate setting)",
            parameter="broker",
        )
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=port or (DEFAULT_MQTTS_PORT if tls else DEFAULT_MQTT_PORT),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _topic_part(text: str) -> str:
    return _TOPIC_SAFE.sub("_", text).strip("_") or "x"


def default_node_id() -> str:
    """Return this machine's host name (first part, lower case) as an MQTT/Home Assistant id."""
    import socket

    return _topic_part(socket.gethostname().split(".")[0].lower()) or "micmon"


class MqttAction(Action):
    """Publish events to an MQTT broker (paho-mqtt 2.x), with retained state and HA discovery.

    ``labels`` are the labels reported: pass the detector's targets, not the background label.
    Topics under ``topic`` (default ``micmon/<node_id>``, ``node_id`` defaulting to the host
    name): ``<topic>/event`` gets every event (QoS 1); ``<topic>/<label>/state`` holds
    ``ON``/``OFF`` (retained); ``<topic>/detection`` gets ``{"event_type": label, ...}`` at each
    start; ``<topic>/level`` the input level in dBFS (the loudest window, every
    `MQTT_LEVEL_INTERVAL` seconds at most); ``<topic>/availability`` holds ``online``/``offline``
    (retained): offline while the audio is down or digital silence (see `audio_status`), when
    micmon stops, and as the broker's last will.

    With ``discovery`` on, Home Assistant entities are announced (retained) under
    ``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` as its MQTT discovery
    describes: a ``binary_sensor`` per label, an ``event`` entity whose event types are the
    labels, and a ``sensor`` for the input level, each with the device, ``origin`` and
    availability. Discovery entries of this node that are no longer announced (the model's labels
    changed) are cleared, and so are those of the older ``binary_sensor/<node_id>_<label>``
    layout. With ``clip_base_url`` (the web page), event payloads carry a ``clip_url``.
    paho reconnects by itself (1 s to 30 s apart); QoS 1 messages published meanwhile are
    delivered after reconnecting.
    """

    name = "mqtt"
    retry = False  # paho keeps QoS 1 messages across reconnects; a retry would duplicate them

    def __init__(
        self,
        broker: str,
        *,
        labels: Sequence[str],
        topic: str | None = None,
        node_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool | None = None,
        ca_certs: str | os.PathLike[str] | None = None,
        tls_insecure: bool = False,
        client_id: str | None = None,
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        qos: int = 1,
        keepalive: int = MQTT_KEEPALIVE,
        device_class: str = "sound",
        clip_base_url: str | None = None,
    ) -> None:
        self.address = parse_broker_url(broker)
        if not labels:
            raise ParameterError("labels: the MQTT action needs the labels it reports", parameter="labels")
        if qos not in (0, 1, 2):
            raise ParameterError(f"qos: must be 0, 1 or 2, got {qos!r}", parameter="qos", value=qos)
        self.node_id = _topic_part(node_id if node_id else default_node_id())
        self.topic = (topic or f"micmon/{self.node_id}").rstrip("/")
        if not self.topic or any(c in self.topic for c in "#+"):
            raise ParameterError(
                f"topic: must be a plain MQTT topic without # or +, got {topic!r}",
                parameter="topic",
                value=topic,
            )
        self.labels = tuple(labels)
        self.username = username if username is not None else self.address.username
        self.password = password if password is not None else self.address.password
        self.tls = self.address.tls if tls is None else tls
        self.ca_certs = None if ca_certs is None else str(expand_path(ca_certs))
        if self.ca_certs is not None and not os.path.isfile(self.ca_certs):
            raise ParameterError(f"ca_certs: {self.ca_certs} does not exist", parameter="ca_certs")
        self.tls_insecure = tls_insecure
        self.client_id = client_id or f"micmon-{self.node_id}-{os.getpid()}"
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix.rstrip("/")
        self.qos = qos
        self.keepalive = keepalive
        self.device_class = device_class
        self.name = f"mqtt {self.address.host}:{self.address.port}"
        self._client: Any = None
        self._states = dict.fromkeys(self.labels, "OFF")
        self.clip_base_url = clip_base_url.rstrip("/") if clip_base_url else None
        self._available: bool | None = None  # None: no audio status yet (counts as online)
        self._level_max: float | None = None
        self._level_at = 0.0
        self._status_lock = threading.Lock()
        self._connected = threading.Event()
        self._was_connected = False
        self._failing = False  # a failure streak was logged; log again only after a success
        self._closing = False

    # topics
    @property
    def availability_topic(self) -> str:
        """Retained online/offline topic (also the last will)."""
        return f"{self.topic}/availability"

    @property
    def event_topic(self) -> str:
        """Topic every event is published to."""
        return f"{self.topic}/event"

    def state_topic(self, label: str) -> str:
        """Retained ON/OFF topic of `label`."""
        return f"{self.topic}/{_topic_part(label)}/state"

    @property
    def detection_topic(self) -> str:
        """Topic of the Home Assistant event entity (a JSON payload with event_type per start)."""
        return f"{self.topic}/detection"

    @property
    def level_topic(self) -> str:
        """Topic of the input level sensor (dBFS)."""
        return f"{self.topic}/level"

    def discovery_topic(self, label: str, component: str = "binary_sensor") -> str:
        """Home Assistant discovery config topic of an entity (`label`: its object id)."""
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{_topic_part(label)}/config"

    def _common(self, object_id: str) -> dict[str, Any]:
        """Keys every entity shares; a label never starts with "_", so "_x" ids cannot collide."""
        from micmon import __version__

        return {
            "unique_id": f"micmon_{self.node_id}_{object_id}",
            "availability_topic": self.availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [f"micmon_{self.node_id}"],
                "name": f"micmon {self.node_id}",
                "manufacturer": "micmon",
                "model": "micmon monitor",
                "sw_version": __version__,
            },
            "origin": {"name": "micmon", "sw_version": __version__},
        }

    def discovery_config(self, label: str) -> dict[str, Any]:
        """Home Assistant MQTT discovery payload for `label`'s binary sensor."""
        return {
            "name": label,
            **self._common(_topic_part(label)),
            "state_topic": self.state_topic(label),
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": self.device_class,
            "json_attributes_topic": f"{self.topic}/{_topic_part(label)}/attributes",
        }

    def discovery_entities(self) -> dict[str, dict[str, Any]]:
        """Return every discovery config topic announced, with its payload."""
        entities = {self.discovery_topic(label): self.discovery_config(label) for label in self.labels}
        entities[self.discovery_topic(MQTT_DETECTION_ID, "event")] = {
            "name": "Detection",
            **self._common(f"_{MQTT_DETECTION_ID}"),
            "state_topic": self.detection_topic,
            "event_types": list(self.labels),
            "icon": "mdi:waveform",
        }
        entities[self.discovery_topic(MQTT_LEVEL_ID, "sensor")] = {
            "name": "Input level",
            **self._common(f"_{MQTT_LEVEL_ID}"),
            "state_topic": self.level_topic,
            "unit_of_measurement": "dBFS",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            "entity_category": "diagnostic",
            "icon": "mdi:microphone",
        }
        return entities

    def _is_stale(self, topic: str, payload: bytes) -> bool:
        """Whether a retained discovery config is this node's but no longer announced."""
        if not payload:
            return False
        parts = topic.split("/")
        prefix = self.discovery_prefix.split("/")
        rest = parts[len(prefix) :]
        if len(rest) == 3 and rest[0] == "binary_sensor":  # the older <node_id>_<label> layout
            if not rest[1].startswith(f"{self.node_id}_"):
                return False
        elif len(rest) != 4 or rest[1] != self.node_id:
            return False
        if topic in self.discovery_entities():
            return False
        try:  # ours: announced for this node's device (node ids may prefix one another)
            identifiers = json.loads(payload)["device"]["identifiers"]
        except (ValueError, KeyError, TypeError):
            return False
        return isinstance(identifiers, list) and f"micmon_{self.node_id}" in identifiers

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.retain and self._is_stale(message.topic, message.payload):
            log.info("%s: removing the stale Home Assistant entity %s", self.name, message.topic)
            client.publish(message.topic, b"", qos=1, retain=True)

    def _payload(self, event: Event) -> dict[str, Any]:
        data = event.to_dict()
        if self.clip_base_url:
            from urllib.parse import quote

            from micmon.history import event_key

            data["clip_url"] = f"{self.clip_base_url}/events/{quote(event_key(event))}/clip"
        return data

    # lifecycle
    def open(self) -> None:
        """Create the client, set the last will, and connect in the background (reconnecting)."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_certs, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(self.tls_insecure)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, MQTT_MAX_RECONNECT_DELAY)
        client.max_queued_messages_set(MQTT_MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive)
        client.loop_start()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None
    ) -> None:
        if getattr(reason, "is_failure", False):
            if not self._failing:
                self._failing = True
                log.warning(
                    "%s: broker refused the connection (%s); check username/password; retrying",
                    self.name,
                    reason,
                )
            return
        self._failing = False
        log.info("%s: %s", self.name, "reconnected" if self._was_connected else "connected")
        self._was_connected = True
        self._connected.set()
        with self._status_lock:
            online = self._available is not False
        client.publish(self.availability_topic, "online" if online else "offline", qos=1, retain=True)
        if self.discovery:
            prefix = self.discovery_prefix
            client.subscribe(
                [(f"{prefix}/+/{self.node_id}/+/config", 1), (f"{prefix}/binary_sensor/+/config", 1)]
            )
            for topic, config in self.discovery_entities().items():
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        for label in self.labels:
            client.publish(self.state_topic(label), self._states[label], qos=1, retain=True)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if self._failing or self._closing:
            return
        self._failing = True
        log.warning(
            "%s: cannot connect (%s); listening goes on, retrying every %d s at most",
            self.name,
            self._diagnose(),
            MQTT_MAX_RECONNECT_DELAY,
        )

    def _diagnose(self) -> str:
        """Say why connecting failed: the TCP connection itself, or what came after it."""
        import socket

        try:
            with socket.create_connection((self.address.host, self.address.port), timeout=3):
                pass
        except OSError as exc:
            return exc.strerror or str(exc)
        if self.tls:
            return "the TLS handshake failed: check the broker's certificate, ca_certs and tls_insecure"
        return "the broker did not answer as an MQTT broker"

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None
    ) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("%s: lost the broker (%s); listening goes on, reconnecting", self.name, reason)
        self._connected.clear()

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker now."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a connection; return whether it is up."""
        return self._connected.wait(timeout)

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """Publish the event and the label's new state (queued by paho while disconnected)."""
        if self._client is None:
            self.open()
        import paho.mqtt.client as mqtt

        client = self._client
        state = "ON" if event.kind == "start" else "OFF"
        self._states[event.label] = state
        payload = json.dumps(self._payload(event), separators=(",", ":"))
        infos = [
            client.publish(self.event_topic, payload, qos=self.qos),
            client.publish(self.state_topic(event.label), state, qos=self.qos, retain=True),
            client.publish(
                f"{self.topic}/{_topic_part(event.label)}/attributes", payload, qos=self.qos, retain=True
            ),
        ]
        if event.kind == "start" and event.label in self.labels:
            fired = {"event_type": event.label, **self._payload(event)}
            infos.append(
                client.publish(self.detection_topic, json.dumps(fired, separators=(",", ":")), qos=self.qos)
            )
        codes = {info.rc for info in infos}
        if mqtt.MQTT_ERR_QUEUE_SIZE in codes:
            raise ActionError(
                f"{self.name}: {MQTT_MAX_QUEUED} messages waiting for the broker; "
                f"dropped the {event.kind} of {event.label}"
            )
        if mqtt.MQTT_ERR_NO_CONN in codes:
            log.warning(
                "%s: broker not connected; the %s of %s is queued until it is back",
                self.name,
                event.kind,
                event.label,
            )
        return event

    def audio_status(self, healthy: bool, level_dbfs: float | None) -> None:
        """Publish availability when audio starts or stops flowing, and the level now and then."""
        now = time.monotonic()
        with self._status_lock:
            changed = healthy != self._available
            self._available = healthy
            if healthy and level_dbfs is not None:
                self._level_max = level_dbfs if self._level_max is None else max(self._level_max, level_dbfs)
            level = None
            if self._level_max is not None and now - self._level_at >= MQTT_LEVEL_INTERVAL:
                level, self._level_max, self._level_at = self._level_max, None, now
        client = self._client
        if client is None or not self._connected.is_set():
            return  # on_connect publishes the availability of the moment
        if changed:
            log.info(
                "%s: audio %s; availability %s",
                self.name,
                "flows" if healthy else "is down or silent",
                "online" if healthy else "offline",
            )
            client.publish(self.availability_topic, "online" if healthy else "offline", qos=1, retain=True)
        if level is not None:
            client.publish(self.level_topic, f"{level:.1f}", qos=0)

    def close(self) -> None:
        """Publish offline, give queued messages a moment to leave, and disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True
        if self._connected.is_set():
            info = client.publish(self.availability_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()
        self._connected.clear()


# -- clip ----------------------------------------------------------------------------------------
class ClipAction(Action):
    """Save each finished event's audio (with pre-roll before the onset) as mp3 or wav, via pydub.

    The clip runs from ``pre_roll`` seconds before the event's start to ``post_roll`` seconds
    after its end (as far as the monitor still holds that audio: the end is reported ``m`` windows
    after it), at most ``max_seconds`` long (the latest audio is kept). The file is
    ``<folder>/<label>-<YYYYmmdd-HHMMSS>.<format>`` and its path goes into the event (``clip``).
    """

    name = "clip"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        format: str = "mp3",
        pre_roll: float = 5.0,
        post_roll: float = 0.0,
        max_seconds: float = 120.0,
        bitrate: str = "64k",
    ) -> None:
        if format not in CLIP_FORMATS:
            raise ParameterError(
                f"format: must be one of {', '.join(CLIP_FORMATS)}, got {format!r}",
                parameter="format",
                value=format,
            )
        for key, value in (("pre_roll", pre_roll), ("post_roll", post_roll)):
            if not isinstance(value, (int, float)) or not 0 <= value <= 600:
                raise ParameterError(
                    f"{key}: must be between 0 and 600 seconds, got {value!r}", parameter=key, value=value
                )
        if not max_seconds > 0:
            raise ParameterError(
                f"max_seconds: must be > 0, got {max_seconds!r}", parameter="max_seconds", value=max_seconds
            )
        # Checked now: an unwritable clip folder is a start-up error, not a failure per event.
        self.folder = check_writable_dir(folder, what="clip folder")
        self.format = format
        self.pre_roll = float(pre_roll)
        self.post_roll = float(post_roll)
        self.max_seconds = float(max_seconds)
        self.bitrate = bitrate
        self.name = f"clip {self.folder}"

    @property
    def history_seconds(self) -> float:
        """Seconds of past audio the monitor must keep for this action."""
        return self.pre_roll + self.max_seconds + self.post_roll

    def path_for(self, event: Event) -> Path:
        """Return the (not yet existing) file a clip of `event` is saved to."""
        stamp = event.start_time[:19].replace(":", "").replace("-", "").replace("T", "-")
        base = self.folder / f"{_topic_part(event.label)}-{stamp}"
        path, n = base.with_suffix(f".{self.format}"), 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}").with_suffix(f".{self.format}")
        return path

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """On an end event with audio, write the clip atomically; return the event with its path."""
        if event.kind != "end" or audio is None or audio.samples.size == 0:
            return event
        from pydub import AudioSegment as PydubSegment

        path = self.path_for(event)
        self.folder.mkdir(parents=True, exist_ok=True)
        keep = int(self.max_seconds * audio.sample_rate) * audio.channels
        pcm = np.ascontiguousarray(audio.samples[-keep:], dtype="<i2").tobytes()
        segment = PydubSegment(
            data=pcm, sample_width=2, frame_rate=audio.sample_rate, channels=audio.channels
        )
        options: dict[str, Any] = {"bitrate": self.bitrate} if self.format == "mp3" else {}
        try:
            with atomic_path(path, suffix=f".{self.format}") as tmp:
                segment.export(tmp, format=self.format, **options).close()
        except OSError as exc:  # a full or read-only disk: trying again at once would not help
            raise ActionError(
                f"cannot save the clip: {describe_os_error(exc, default_path=str(path))}", retryable=False
            ) from None
        except Exception as exc:
            raise ActionError(f"{path}: cannot save the clip ({exc})", retryable=False) from None
        log.info("saved clip %s (%.1f s)", path, audio.duration)
        return event.with_clip(str(path))


# -- runners -------------------------------------------------------------------------------------
_STOP = object()


class ActionRunner:
    """Run one action on its own thread from a bounded queue, retrying failures with backoff.

    When the queue is full the oldest job is dropped (with a warning), so a stuck action costs
    bounded memory and never blocks the caller. ``forward`` receives each handled event (used to
    pass clip paths on to the other actions).
    """

    def __init__(
        self,
        action: Action,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        forward: Callable[[Event], None] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ParameterError(
                f"queue_size: must be >= 1, got {queue_size!r}", parameter="queue_size", value=queue_size
            )
        if retries < 0:
            raise ParameterError(
                f"retries: must be >= 0, got {retries!r}", parameter="retries", value=retries
            )
        self.action = action
        self.retries = retries if action.retry else 0
        self.retry_delay = float(retry_delay)
        self.forward = forward
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._deadline: float | None = None
        self.failures = 0
        self.dropped = 0
        self.handled = 0
        self._thread = threading.Thread(target=self._run, name=f"micmon-{action.name}", daemon=True)
        self._thread.start()

    def submit(self, event: Event, audio: ClipAudio | None = None) -> None:
        """Queue an event without blocking; drop the oldest job if the queue is full."""
        while True:
            try:
                self._queue.put_nowait((event, audio))
                return
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if old is _STOP:  # closing: keep the stop marker, lose the new event
                    self._queue.put_nowait(old)
                    return
                self.dropped += 1
                log.warning(
                    "%s: too many events waiting; dropped the %s of %s",
                    self.action.name,
                    old[0].kind,
                    old[0].label,
                )

    def _run(self) -> None:
        try:
            self.action.open()
        except Exception as exc:  # the action stays usable: handle() may open again
            log.warning("%s: cannot start (%s)", self.action.name, exc)
        while True:
            job = self._queue.get()
            if job is _STOP:
                break
            event, audio = job
            self._handle(event, audio)
        try:
            self.action.close()
        except Exception as exc:
            log.warning("%s: error while closing (%s)", self.action.name, exc)

    def _handle(self, event: Event, audio: ClipAudio | None) -> None:
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                result = self.action.handle(event, audio)
            except Exception as exc:
                self.failures += 1
                last = (
                    attempt == self.retries
                    or self._past_deadline(delay)
                    or not getattr(exc, "retryable", True)
                )
                then = "; giving up" if last else f"; retrying in {delay:g} s"
                log.warning(
                    "%s: %s of %s failed (%s)%s", self.action.name, event.kind, event.label, exc, then
                )
                if last:
                    break
                if self._stop.wait(delay) and self._past_deadline(0):
                    break
                delay = min(delay * 2, MAX_RETRY_DELAY)
            else:
                event = result if isinstance(result, Event) else event
                self.handled += 1
                break
        if self.forward is not None:
            try:
                self.forward(event)
            except Exception:  # pragma: no cover - forwarding only queues
                log.exception("%s: cannot pass the event on", self.action.name)

    def _past_deadline(self, delay: float) -> bool:
        return self._deadline is not None and time.monotonic() + delay > self._deadline

    @property
    def pending(self) -> int:
        """Jobs waiting in the queue."""
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> bool:
        """Finish the queued jobs (retrying no later than `timeout`), stop; True if all done."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 1.0)
        return not self._thread.is_alive()


class Actions:
    """Fan events out to several actions, each on its own runner; clip first if there is one."""

    def __init__(
        self,
        actions: Sequence[Action],
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
    ) -> None:
        self.actions = list(actions)
        clips = [a for a in self.actions if isinstance(a, ClipAction)]
        if len(clips) > 1:
            raise ParameterError("actions: at most one clip action", parameter="actions")
        self.clip: ClipAction | None = clips[0] if clips else None
        others = [a for a in self.actions if a is not self.clip]

        def runner(action: Action, **extra: Any) -> ActionRunner:
            tries = retries if action.retries is None else action.retries
            return ActionRunner(
                action, queue_size=queue_size, retries=tries, retry_delay=retry_delay, **extra
            )

        self._runners = [runner(a) for a in others]
        self._clip_runner = runner(self.clip, forward=self._fan_out) if self.clip is not None else None

    @property
    def runners(self) -> list[ActionRunner]:
        """Every runner, clip first."""
        return ([self._clip_runner] if self._clip_runner else []) + self._runners

    @property
    def history_seconds(self) -> float:
        """Seconds of past audio to keep for clips (0 without a clip action)."""
        return self.clip.history_seconds if self.clip is not None else 0.0

    def wants_audio(self, event: Event) -> bool:
        """Whether `event` should be submitted with its audio (end events, with a clip action)."""
        return self.clip is not None and event.kind == "end"

    def submit(self, event: Event, audio: ClipAudio | None = None) -> None:
        """Queue `event` for every action; never blocks."""
        if self._clip_runner is not None:
            self._clip_runner.submit(event, audio)
        else:
            self._fan_out(event)

    def _fan_out(self, event: Event) -> None:
        for runner in self._runners:
            runner.submit(event)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush and stop every action within about `timeout` seconds; True if all finished."""
        done = True
        if self._clip_runner is not None:
            done = self._clip_runner.close(timeout)
        for runner in self._runners:
            done = runner.close(timeout) and done
        return done

    def __enter__(self) -> Actions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
