"""Home Assistant through a real mosquitto: discovery entities, availability from the audio, stale entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import make_recording
from micmon.actions import MqttAction, default_node_id
from micmon.detect import DetectorSettings, Event
from micmon.monitor import Monitor, file_source
from mqtt_broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.mqtt

MICMON = str(Path(sys.executable).with_name("micmon"))
ORIGIN = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as b:
        yield b


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return (
        make_recording(
            tmp_path_factory.mktemp("ha") / "r", seconds=12.0, events=[(3.0, 8.0)], fmt="wav", seed=9
        )
        / "audio.wav"
    )


def _configs(sub: Subscriber) -> dict[str, dict]:
    return {
        m.topic: json.loads(m.payload)
        for m in sub.messages
        if m.topic.startswith("homeassistant/") and m.payload
    }


def test_monitor_announces_every_entity_but_none_for_the_background(
    broker: MosquittoBroker, trained_model_dir: Path, recording: Path, tmp_path: Path
) -> None:
    (tmp_path / "micmon.yaml").write_text(
        "monitor:\n  hop: 0.5\n  threshold: 0.6\n  k: 2\n  n: 3\n  m: 2\n  actions:\n"
        f"    - type: mqtt\n      broker: {broker.url}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    env.update(MICMON_NO_LIVE="1", HOME=str(tmp_path))
    node = default_node_id()
    with Subscriber(broker, "homeassistant/#", f"micmon/{node}/#") as sub:
        proc = subprocess.run(
            [
                MICMON,
                "--config",
                str(tmp_path / "micmon.yaml"),
                "monitor",
                "--model",
                str(trained_model_dir),
                "--input",
                str(recording),
                "--fast",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        sub.wait_for(lambda m: m.topic == f"micmon/{node}/availability" and m.payload == "offline")
        sub.wait_for(lambda m: m.topic == f"micmon/{node}/detection")
    configs = _configs(sub)
    assert set(configs) == {
        f"homeassistant/binary_sensor/{node}/positive/config",
        f"homeassistant/event/{node}/detection/config",
        f"homeassistant/sensor/{node}/input_level/config",
    }
    assert not any("negative" in topic for topic in configs)  # the background label
    sensor = configs[f"homeassistant/binary_sensor/{node}/positive/config"]
    event = configs[f"homeassistant/event/{node}/detection/config"]
    level = configs[f"homeassistant/sensor/{node}/input_level/config"]
    assert sensor["state_topic"] == f"micmon/{node}/positive/state"
    assert sensor["device_class"] == "sound" and sensor["unique_id"] == f"micmon_{node}_positive"
    assert event["event_types"] == ["positive"] and event["state_topic"] == f"micmon/{node}/detection"
    assert level["unit_of_measurement"] == "dBFS" and level["state_class"] == "measurement"
    assert len({c["unique_id"] for c in configs.values()}) == 3
    for config in configs.values():
        assert config["origin"]["name"] == "micmon" and config["origin"]["sw_version"]
        assert config["device"]["identifiers"] == [f"micmon_{node}"]
        assert config["availability_topic"] == f"micmon/{node}/availability"
    (fired,) = [json.loads(m.payload) for m in sub.messages if m.topic == f"micmon/{node}/detection"]
    assert fired["event_type"] == "positive" and fired["event"] == "start"
    levels = [float(m.payload) for m in sub.messages if m.topic == f"micmon/{node}/level"]
    assert levels and all(-100 < v <= 0 for v in levels)


def test_availability_follows_the_capture(
    broker: MosquittoBroker, trained_model_dir: Path, tmp_path: Path
) -> None:
    from micmon.model import Model

    model = Model.load(trained_model_dir)
    short = make_recording(tmp_path / "r", seconds=4.0, events=[], fmt="wav") / "audio.wav"
    action = MqttAction(broker.url, labels=["positive"], node_id="kitchen")
    # A live source played in real time: when the file ends the capture counts as lost, and it
    # is reopened after 1 s, as a microphone that comes back.
    monitor = Monitor(
        model,
        file_source(short, spec=model.spec, hop=0.5, realtime=True),
        settings=DetectorSettings(threshold=0.6, k=2, n=3, m=2),
        hop=0.5,
        live=True,
        actions=[action],
        initial_backoff=1.0,
        max_backoff=1.0,
    )
    with Subscriber(broker, "micmon/kitchen/availability") as sub:
        thread = threading.Thread(target=monitor.run)
        thread.start()
        try:
            sub.wait_for(lambda m: m.payload == "offline", timeout=20)  # capture stopped

            def back_online(_: object) -> bool:
                payloads = [m.payload for m in sub.messages]
                return "online" in payloads[payloads.index("offline") :]

            sub.wait_for(back_online, timeout=20)
        finally:
            monitor.stop()
            thread.join(20)
        payloads = [m.payload for m in sub.messages]
        first_off = payloads.index("offline")
        assert "online" in payloads[:first_off] and "online" in payloads[first_off:]
        assert payloads[-1] == "offline"  # stopped


def test_availability_and_level_follow_the_audio_status(broker: MosquittoBroker) -> None:
    action = MqttAction(broker.url, labels=["positive"], node_id="den")
    action.open()
    try:
        assert action.wait_connected(10)
        with Subscriber(broker, "micmon/den/availability", "micmon/den/level") as sub:
            sub.wait_for(lambda m: m.payload == "online")  # retained: no status yet counts as up
            action.audio_status(True, -31.0)
            action.audio_status(True, -12.5)  # within MQTT_LEVEL_INTERVAL: not published yet
            action.audio_status(False, None)  # down, or digital silence
            sub.wait_for(lambda m: m.payload == "offline")
            action.audio_status(True, -20.0)
            sub.wait_for(
                lambda m: m.topic.endswith("availability") and m.payload == "online", count=3
            )  # retained, first status, back after the offline
            payloads = [m.payload for m in sub.messages if m.topic.endswith("availability")]
            assert payloads == ["online", "online", "offline", "online"]
            levels = [m.payload for m in sub.messages if m.topic.endswith("/level")]
            assert levels == ["-31.0"]
    finally:
        action.close()


def test_stale_entities_of_this_node_are_cleared(broker: MosquittoBroker) -> None:
    import paho.mqtt.client as mqtt

    def config(node: str, label: str) -> dict:
        return {"unique_id": f"micmon_{node}_{label}", "device": {"identifiers": [f"micmon_{node}"]}}

    stale = {  # the model had a "cry" label, and an older micmon used the flat layout
        "homeassistant/binary_sensor/nursery/cry/config": config("nursery", "cry"),
        "homeassistant/binary_sensor/nursery_bark/config": config("nursery", "bark"),
    }
    foreign = {
        "homeassistant/binary_sensor/hall/cry/config": config("hall", "cry"),
        "homeassistant/binary_sensor/nursery_2_cry/config": config("nursery_2", "cry"),
        "homeassistant/binary_sensor/nursery_lamp/config": {"unique_id": "zigbee_lamp"},
    }
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, payload in {**stale, **foreign}.items():
        client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    action = MqttAction(
        broker.url, labels=["positive"], node_id="nursery", clip_base_url="http://pi.local:8080"
    )
    try:
        with Subscriber(broker, "homeassistant/#") as sub:  # subscribed first, so it sees every clear
            action.open()
            assert action.wait_connected(10)
            sub.wait_for(lambda m: m.topic.endswith("/input_level/config"))
            sub.wait_for(lambda m: m.topic in stale and not m.retain and not m.payload, count=len(stale))
        with Subscriber(broker, "homeassistant/#", "micmon/nursery/#") as late:
            kept = {*foreign, *action.discovery_entities()}
            late.wait_for(lambda m: m.retain and m.topic in kept, count=len(kept))
            retained = {m.topic for m in late.messages if m.retain and m.payload}
            assert not set(stale) & retained
            assert set(foreign) <= retained
            assert "homeassistant/binary_sensor/nursery/positive/config" in retained
            start = Event("start", "positive", 1.0, None, 0.9, 0.9, 0.9, 2, ORIGIN)
            action.handle(start)
            (fired,) = late.wait_for(lambda m: m.topic == "micmon/nursery/detection")
            assert json.loads(fired.payload)["clip_url"] == (
                "http://pi.local:8080/events/positive-1778051290000/clip"
            )
    finally:
        action.close()


def test_node_id_defaults_to_the_host_name() -> None:
    import socket

    action = MqttAction("mqtt://localhost", labels=["cry"])
    expected = socket.gethostname().split(".")[0].lower()
    assert action.node_id == "".join(c if c.isalnum() or c in "_-" else "_" for c in expected)
    assert action.topic == f"micmon/{action.node_id}"
