"""Actions: print, command, webhook (local HTTP server), MQTT (real mosquitto), clip; runners."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from micmon.actions import (
    Action,
    ActionError,
    ActionRunner,
    Actions,
    ClipAction,
    ClipAudio,
    CommandAction,
    MqttAction,
    PrintAction,
    WebhookAction,
    parse_broker_url,
)
from micmon.detect import Event
from micmon.errors import ParameterError
from mqtt_broker import MosquittoBroker, Subscriber

ORIGIN = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
RATE = 8000


def _event(
    kind: str = "start", label: str = "positive", start: float = 10.0, end: float | None = None
) -> Event:
    if kind == "end" and end is None:
        end = start + 4.0
    return Event(
        kind=kind,
        label=label,
        start=start,
        end=end,
        confidence=0.91,  # type: ignore[arg-type]
        peak=0.97,
        mean=0.9,
        windows=5,
        origin=ORIGIN,
    )


# -- print ---------------------------------------------------------------------------------------
def test_print_action_human_and_json_lines() -> None:
    out = io.StringIO()
    PrintAction(stream=out).handle(_event("start"))
    PrintAction(stream=out).handle(_event("end"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "2026-05-06T07:08:19.000+00:00 START positive (confidence 0.91)"
    assert "END   positive after 4.0 s (peak 0.97, mean 0.90)" in lines[1]
    out = io.StringIO()
    PrintAction(json_lines=True, stream=out).handle(_event("end"))
    data = json.loads(out.getvalue())
    assert data["event"] == "end" and data["label"] == "positive"
    assert data["time"] == "2026-05-06T07:08:23.000+00:00" and data["confidence"] == 0.91


# -- command -------------------------------------------------------------------------------------
RECORDER = """
import json, os, sys
keys = ["MICMON_EVENT", "MICMON_LABEL", "MICMON_CONFIDENCE", "MICMON_CLIP", "MICMON_TIME"]
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"env": {k: os.environ.get(k) for k in keys},
                        "stdin": json.loads(sys.stdin.read()), "argv": sys.argv[1:]}) + "\\n")
"""


def test_command_gets_environment_and_stdin_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    action = CommandAction([sys.executable, "-c", RECORDER, str(out)])
    evil = _event("start", label="$(touch pwned);`touch pwned2`")
    action.handle(evil)
    action.handle(_event("end").with_clip("/clips/a.mp3"))
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert calls[0]["env"]["MICMON_EVENT"] == "start"
    assert calls[0]["env"]["MICMON_LABEL"] == evil.label
    assert calls[0]["env"]["MICMON_CONFIDENCE"] == "0.9100"
    assert calls[0]["env"]["MICMON_CLIP"] == ""
    assert calls[0]["stdin"]["label"] == evil.label and calls[0]["argv"] == [str(out)]
    assert calls[1]["env"]["MICMON_CLIP"] == "/clips/a.mp3"
    assert calls[1]["stdin"]["event"] == "end"
    assert not (tmp_path / "pwned").exists() and not Path("pwned2").exists()


def test_command_failure_and_timeout_raise(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="exit code 3 oops"):
        CommandAction([sys.executable, "-c", "import sys; sys.stderr.write('oops'); sys.exit(3)"]).handle(
            _event()
        )
    started = time.monotonic()
    with pytest.raises(ActionError, match="still running after 0.3 s"):
        CommandAction(["sleep", "5"], timeout=0.3).handle(_event())
    assert time.monotonic() - started < 3


def test_command_only_on_selected_events(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    action = CommandAction([sys.executable, "-c", RECORDER, str(out)], events=["end"])
    action.handle(_event("start"))
    action.handle(_event("end"))
    assert len(out.read_text().splitlines()) == 1


# -- webhook -------------------------------------------------------------------------------------
class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        cls.received.append({"body": body, "type": self.headers["Content-Type"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "fail_first": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhook_posts_json(webhook_server: tuple[str, type[_Hook]]) -> None:
    url, handler = webhook_server
    WebhookAction(url).handle(_event("start"))
    assert handler.received[0]["body"]["event"] == "start"
    assert handler.received[0]["type"] == "application/json"


def test_webhook_errors_are_retried_by_the_runner(
    webhook_server: tuple[str, type[_Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = webhook_server
    handler.fail_first = 2
    runner = ActionRunner(WebhookAction(url, timeout=2), retries=3, retry_delay=0.05)
    runner.submit(_event("start"))
    assert runner.close(timeout=5)
    assert [r["body"]["event"] for r in handler.received] == ["start"]
    assert runner.failures == 2 and "HTTP 503" in caplog.text


def test_webhook_unreachable_gives_up_after_bounded_retries(caplog: pytest.LogCaptureFixture) -> None:
    from mqtt_broker import free_port

    runner = ActionRunner(
        WebhookAction(f"http://127.0.0.1:{free_port()}/x", timeout=1), retries=2, retry_delay=0.01
    )
    with caplog.at_level(logging.WARNING):
        runner.submit(_event())
        assert runner.close(timeout=5)
    assert runner.failures == 3 and "giving up" in caplog.text


# -- MQTT ----------------------------------------------------------------------------------------
@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as b:
        yield b


@pytest.mark.mqtt
def test_mqtt_events_state_discovery_and_availability(broker: MosquittoBroker) -> None:
    with Subscriber(broker, "micmon/#", "homeassistant/#") as sub:
        action = MqttAction(broker.url, labels=["positive"], node_id="nursery")
        action.open()
        assert action.wait_connected(10)
        sub.wait_for(lambda m: m.topic == "micmon/nursery/availability" and m.payload == "online")
        (config,) = sub.wait_for(lambda m: m.topic == "homeassistant/binary_sensor/nursery/positive/config")
        data = json.loads(config.payload)
        assert data["state_topic"] == "micmon/nursery/positive/state"
        assert data["availability_topic"] == "micmon/nursery/availability"
        assert data["payload_on"] == "ON" and data["device_class"] == "sound"
        sub.wait_for(lambda m: m.topic == "micmon/nursery/positive/state" and m.payload == "OFF")
        action.handle(_event("start"))
        action.handle(_event("end"))
        events = sub.wait_for(lambda m: m.topic == "micmon/nursery/event", count=2)
        assert [json.loads(m.payload)["event"] for m in events] == ["start", "end"]
        states = sub.wait_for(lambda m: m.topic == "micmon/nursery/positive/state", count=3)
        assert [m.payload for m in states] == ["OFF", "ON", "OFF"]
        action.close()
        sub.wait_for(lambda m: m.topic == "micmon/nursery/availability" and m.payload == "offline")
    # Retained: a newcomer sees state, discovery and availability at once.
    with Subscriber(broker, "micmon/#", "homeassistant/#") as late:
        late.wait_for(lambda m: m.retain and m.topic.endswith("/positive/state") and m.payload == "OFF")
        late.wait_for(lambda m: m.retain and m.topic.endswith("/config"))
        late.wait_for(lambda m: m.retain and m.topic.endswith("/availability"))


@pytest.mark.mqtt
def test_mqtt_last_will_on_crash(broker: MosquittoBroker) -> None:
    code = (
        "import os, sys; from micmon.actions import MqttAction; "
        "a = MqttAction(sys.argv[1], labels=['positive'], node_id='crash'); a.open(); "
        "assert a.wait_connected(10); import time; time.sleep(0.3); os._exit(0)"
    )
    with Subscriber(broker, "micmon/crash/availability") as sub:
        subprocess.run([sys.executable, "-c", code, broker.url], check=True, timeout=30)
        sub.wait_for(lambda m: m.payload == "online")
        sub.wait_for(lambda m: m.payload == "offline", timeout=10)


@pytest.mark.mqtt
def test_mqtt_username_password(caplog: pytest.LogCaptureFixture) -> None:
    with MosquittoBroker(password=("micmon", "s3cret")) as b:
        bad = MqttAction(b.url.replace("mqtt://", "mqtt://micmon:wrong@"), labels=["positive"])
        bad.open()
        assert not bad.wait_connected(1.5)
        bad.close()
        assert "refused the connection (Not authorized); check username/password" in caplog.text
        good = MqttAction(b.url, labels=["positive"], username="micmon", password="s3cret")
        good.open()
        assert good.wait_connected(10)
        good.close()


@pytest.mark.mqtt
def test_mqtt_over_tls(caplog: pytest.LogCaptureFixture) -> None:
    with MosquittoBroker(tls=True) as b:
        assert b.url.startswith("mqtts://")
        untrusted = MqttAction(b.url, labels=["positive"])  # self-signed: not in the system CAs
        untrusted.open()
        assert not untrusted.wait_connected(1.5)
        untrusted.close()
        assert "TLS handshake failed" in caplog.text
        trusted = MqttAction(b.url, labels=["positive"], ca_certs=b.ca_file, node_id="tls")
        trusted.open()
        assert trusted.wait_connected(10)
        trusted.handle(_event("start"))
        trusted.close()


@pytest.mark.mqtt
def test_mqtt_broker_down_events_queued_and_delivered_after_reconnect(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    action = MqttAction(broker.url, labels=["positive"], node_id="flaky")
    runner = ActionRunner(action)
    assert action.wait_connected(10)
    with caplog.at_level(logging.WARNING):
        broker.stop()
        deadline = time.monotonic() + 10
        while action.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not action.connected
        started = time.monotonic()
        runner.submit(_event("start"))
        time.sleep(0.3)
        assert time.monotonic() - started < 1  # submit never blocks
        assert "lost the broker" in caplog.text
        assert "queued until it is back" in caplog.text
        broker.start()
        assert action.wait_connected(15)
    with Subscriber(broker, "micmon/flaky/#") as sub:
        sub.wait_for(lambda m: m.topic == "micmon/flaky/positive/state" and m.payload == "ON")
        (attrs,) = sub.wait_for(lambda m: m.topic == "micmon/flaky/positive/attributes")
        assert json.loads(attrs.payload)["event"] == "start"
    assert runner.close(5)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "expected a URL"),
        ("http://host", "unknown scheme 'http'"),
        ("mqtt://", "has no host name"),
        ("mqtt://host:notaport", "not a valid URL"),
        ("mqtt://host:1883/topic", "has a path"),
    ],
)
def test_bad_broker_urls(url: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_broker_url(url)


def test_broker_url_forms() -> None:
    assert parse_broker_url("localhost").port == 1883
    tls = parse_broker_url("mqtts://u%40x:p%3Aw@broker.lan")
    assert (tls.host, tls.port, tls.tls, tls.username, tls.password) == (
        "broker.lan",
        8883,
        True,
        "u@x",
        "p:w",
    )


# -- clip ----------------------------------------------------------------------------------------
def _audio(seconds: float, start: float = 5.0) -> ClipAudio:
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return ClipAudio(samples=samples, sample_rate=RATE, channels=1, start=start)


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_clip_saved_with_path_in_event(tmp_path: Path, fmt: str) -> None:
    action = ClipAction(tmp_path / "clips", format=fmt, pre_roll=5.0)
    assert action.handle(_event("start"), _audio(9.0)).clip is None
    event = action.handle(_event("end"), _audio(9.0))
    assert event.clip is not None
    path = Path(event.clip)
    assert path.exists() and path.suffix == f".{fmt}" and path.name.startswith("positive-20260506")
    from pydub import AudioSegment

    assert AudioSegment.from_file(path).duration_seconds == pytest.approx(9.0, abs=0.1)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    second = action.handle(_event("end"), _audio(1.0))
    assert second.clip != event.clip and Path(second.clip or "").exists()


def test_actions_pass_the_clip_path_on(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    clip = ClipAction(tmp_path / "clips", format="wav", pre_roll=2.0)
    with Actions([CommandAction([sys.executable, "-c", RECORDER, str(out)]), clip]) as actions:
        assert actions.history_seconds == clip.history_seconds
        actions.submit(_event("start"))
        end = _event("end")
        assert actions.wants_audio(end)
        actions.submit(end, _audio(6.0))
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["env"]["MICMON_EVENT"] for c in calls] == ["start", "end"]
    path = Path(calls[1]["env"]["MICMON_CLIP"])
    assert path.exists() and calls[1]["stdin"]["clip"] == str(path)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 6 * RATE


# -- runners -------------------------------------------------------------------------------------
class _Slow(Action):
    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen: list[Event] = []

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        time.sleep(self.delay)
        self.seen.append(event)
        return event


def test_slow_action_never_blocks_and_queue_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    action = _Slow(0.2)
    runner = ActionRunner(action, queue_size=3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            runner.submit(_event(start=float(i)))
    assert time.monotonic() - started < 0.1
    assert runner.close(timeout=5)
    assert runner.dropped >= 5 and "dropped" in caplog.text
    # The newest events survive.
    assert action.seen[-1].start == 9.0 and len(action.seen) <= 5


def test_crashing_action_is_logged_and_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    class Boom(Action):
        name = "boom"

        def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
            raise RuntimeError("kaput")

    ok = _Slow(0.0)
    with caplog.at_level(logging.WARNING):
        actions = Actions([Boom(), ok], retries=1, retry_delay=0.01)
        actions.submit(_event())
        assert actions.close(timeout=5)
    assert len(ok.seen) == 1 and "boom: start of positive failed (kaput); giving up" in caplog.text


def test_bad_action_parameters(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="not an executable"):
        CommandAction(["no-such-program-micmon"])
    with pytest.raises(ParameterError, match="command: expected a program"):
        CommandAction([])
    with pytest.raises(ParameterError, match="timeout"):
        CommandAction(["true"], timeout=0)
    with pytest.raises(ParameterError, match="events"):
        CommandAction(["true"], events=["middle"])
    with pytest.raises(ParameterError, match="url: expected an http"):
        WebhookAction("ftp://x")
    with pytest.raises(ParameterError, match="format: must be one of mp3, wav"):
        ClipAction(tmp_path, format="ogg")
    with pytest.raises(ParameterError, match="pre_roll"):
        ClipAction(tmp_path, pre_roll=-1)
    with pytest.raises(ParameterError, match="topic"):
        MqttAction("mqtt://localhost", labels=["a"], topic="micmon/#")
    with pytest.raises(ParameterError, match="at most one clip"):
        Actions([ClipAction(tmp_path), ClipAction(tmp_path)])


def test_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    with pytest.raises(ActionError, match="killed it and its children"):
        CommandAction(["sh", "-c", script], timeout=0.5).handle(_event())
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        state = (
            Path(f"/proc/{child}/stat").read_text().split()[2]
            if Path(f"/proc/{child}/stat").exists()
            else "X"
        )
        if state == "Z":
            break
        time.sleep(0.05)
    alive = Path(f"/proc/{child}/stat").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
    assert not alive, "the command's child outlived the timeout"


def test_failing_command_runs_once_per_event(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = tmp_path / "calls"
    script = f"echo run >> {calls}; echo broken >&2; exit 2"
    with caplog.at_level(logging.WARNING):
        actions = Actions([CommandAction(["sh", "-c", script])], retries=3, retry_delay=0.01)
        actions.submit(_event())
        assert actions.close(timeout=10)
    assert calls.read_text().splitlines() == ["run"]
    assert "exit code 2 broken" in caplog.text and "giving up" in caplog.text


def test_a_retryable_failure_is_still_retried() -> None:
    class Flaky(Action):
        name = "flaky"
        calls = 0

        def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
            self.calls += 1
            if self.calls < 3:
                raise ActionError("cannot start (Resource temporarily unavailable)")
            return event

    flaky = Flaky()
    runner = ActionRunner(flaky, retries=3, retry_delay=0.01)
    runner.submit(_event())
    assert runner.close(timeout=5)
    assert flaky.calls == 3 and runner.handled == 1


@pytest.mark.mqtt
def test_mqtt_availability_follows_a_silent_input(broker: MosquittoBroker) -> None:
    with Subscriber(broker, "micmon/#") as sub:
        action = MqttAction(broker.url, labels=["positive"], node_id="mute")
        action.open()
        assert action.wait_connected(10)
        sub.wait_for(lambda m: m.topic == "micmon/mute/availability" and m.payload == "online")
        action.audio_status(False, None)  # the monitor's status: digital silence (or down)
        sub.wait_for(lambda m: m.topic == "micmon/mute/availability" and m.payload == "offline")
        action.audio_status(True, -30.0)
        sub.wait_for(lambda m: m.topic == "micmon/mute/availability" and m.payload == "online")
        action.close()


def test_unwritable_clip_folder_is_a_start_up_error(tmp_path: Path) -> None:
    from micmon.errors import OutputError

    blocker = tmp_path / "clips"
    blocker.write_text("a file where the clip folder should be")
    with pytest.raises(OutputError, match=f"{blocker}: is a file, not a folder; choose another clip folder"):
        ClipAction(blocker / "today")
