"""A private mosquitto broker on a free loopback port, plus a small subscriber, for MQTT tests.

Usage::

    with MosquittoBroker() as broker:     # broker.url == "mqtt://127.0.0.1:<port>"
        with Subscriber(broker, "micmon/#") as sub:
            ...
            sub.wait_for(lambda m: m.topic.endswith("/event"))
        broker.stop(); broker.start()     # same port again: clients reconnect
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from helpers import stop_process

START_TIMEOUT = 10.0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """Run `mosquitto -c <generated config>` on 127.0.0.1:<port>; restartable on the same port."""

    def __init__(
        self, port: int | None = None, *, password: tuple[str, str] | None = None, tls: bool = False
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="micmon-mqtt-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// (or mqtts:// with TLS) URL."""
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate of a TLS broker (for 127.0.0.1), to trust as CA."""
        return self.dir / "cert.pem"

    def _make_certificate(self) -> None:
        if self.ca_file.exists():
            return
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(self.dir / "key.pem"),
                "-out",
                str(self.ca_file),
            ],
            check=True,
            capture_output=True,
        )

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false"]
        if os.geteuid() == 0:
            # mosquitto started as root drops to user 'mosquitto', who cannot read our tmp dir.
            lines.append("user root")
        if self.password:
            user, pw = self.password
            pwfile = self.dir / "passwd"
            pwfile.write_text("")
            subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, pw], check=True, capture_output=True)
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines += ["allow_anonymous true"]
        if self.tls:
            self._make_certificate()
            lines += [f"certfile {self.ca_file}", f"keyfile {self.dir / 'key.pem'}"]
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> MosquittoBroker:
        """Start the broker and wait until its port accepts connections."""
        exe = shutil.which("mosquitto")
        if exe is None:
            raise RuntimeError("mosquitto is not installed")
        self.log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [exe, "-c", str(self._config())], stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start: {(self.dir / 'mosquitto.log').read_text()}")

    def stop(self) -> None:
        """Stop the broker (the port can be reused by start())."""
        proc, self.proc = self.proc, None
        stop_process(proc)
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass(frozen=True)
class Message:
    """One received MQTT message."""

    topic: str
    payload: str
    retain: bool


class Subscriber:
    """A paho client collecting every message on `topics` in a list (thread-safe waits)."""

    def __init__(self, broker: MosquittoBroker, *topics: str, auth: tuple[str, str] | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._topics = topics or ("#",)
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self._ready.set()
        self.broker = broker

    def _on_connect(self, client: Any, *args: Any) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload.decode(), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0, count: int = 1
    ) -> list[Message]:
        """Wait until `count` messages match; return them (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {count} matching messages in {timeout} s; got "
                        f"{[(m.topic, m.payload) for m in self.messages]}"
                    )
                self._cond.wait(left)

    def __enter__(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber did not subscribe")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()
