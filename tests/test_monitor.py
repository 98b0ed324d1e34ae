"""Monitor and Listener: real ffmpeg, the tiny trained model (LiteRT), real actions and broker."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import make_recording
from micmon.actions import Actions, ClipAction, MqttAction, PrintAction
from micmon.detect import DetectorSettings, Event
from micmon.errors import AudioError, ParameterError
from micmon.monitor import Listener, Monitor, WindowResult, device_source, file_source
from mqtt_broker import MosquittoBroker, Subscriber

SETTINGS = DetectorSettings(threshold=0.6, k=2, n=3, m=2)
HOP = 0.5


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):  # noqa: ANN201 - Model
    from micmon.model import Model

    return Model.load(trained_model_dir)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of background with beeps (the positive sound) from 6 s to 12 s, as a wav."""
    folder = make_recording(
        tmp_path_factory.mktemp("rec") / "r", seconds=20.0, events=[(6.0, 12.0)], fmt="wav", seed=7
    )
    return folder / "audio.wav"


def _pcm(path: Path, rate: int) -> np.ndarray:
    raw = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2")


def _key(e: Event) -> tuple:
    return (
        e.kind,
        e.label,
        round(e.start, 6),
        None if e.end is None else round(e.end, 6),
        round(e.peak, 5),
        round(e.mean, 5),
        e.windows,
    )


def _replay(model, path: Path, *, actions=None, settings=SETTINGS, **kw) -> tuple[Monitor, list]:  # noqa: ANN001
    events: list[Event] = []
    monitor = Monitor(
        model,
        file_source(path, spec=model.spec, hop=HOP, realtime=False),
        settings=settings,
        actions=actions,
        hop=HOP,
        live=False,
        on_event=events.append,
        **kw,
    )
    monitor.run()
    return monitor, events


def test_file_replay_finds_the_event(model, recording: Path) -> None:  # noqa: ANN001
    monitor, events = _replay(model, recording)
    assert [(e.kind, e.label) for e in events] == [("start", "positive"), ("end", "positive")]
    end = events[1]
    assert 5.0 <= end.start <= 7.5 and 11.0 <= (end.end or 0) <= 13.0
    assert end.peak >= end.mean >= 0.6
    assert monitor.stats.windows == int((20.0 - 2.0) / HOP) + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_events_do_not_depend_on_chunk_size(model, recording: Path, seed: int) -> None:  # noqa: ANN001
    _, reference = _replay(model, recording)
    pcm = _pcm(recording, model.spec.sample_rate)
    rng = np.random.default_rng(seed)
    listener = Listener(model, SETTINGS, hop=HOP)
    got: list[Event] = []
    i = 0
    while i < len(pcm):
        size = int(rng.choice([1, 7, 441, 4410, 22050, 100_000]))
        got += [e for e, _ in listener.feed(pcm[i : i + size])]
        i += size
    got += [e for e, _ in listener.finish()]
    assert [_key(e) for e in got] == [_key(e) for e in reference]


def test_clip_has_pre_roll_and_json_lines(model, recording: Path, tmp_path: Path) -> None:  # noqa: ANN001
    out = io.StringIO()
    clip = ClipAction(tmp_path / "clips", format="wav", pre_roll=3.0)
    _, events = _replay(model, recording, actions=[PrintAction(json_lines=True, stream=out), clip])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["event"] for d in lines] == ["start", "end"]
    end = lines[1]
    assert end["clip"] and Path(end["clip"]).exists()
    from pydub import AudioSegment

    seconds = AudioSegment.from_file(end["clip"]).duration_seconds
    assert seconds == pytest.approx(end["duration"] + 3.0, abs=0.05)


def test_loudness_gate_skips_scoring(model, recording: Path) -> None:  # noqa: ANN001
    monitor, events = _replay(model, recording, settings=SETTINGS.with_(min_dbfs=-3.0))
    assert events == [] and monitor.stats.gated == monitor.stats.windows


def test_monitor_never_imports_tensorflow(trained_model_dir: Path, recording: Path) -> None:
    code = """
import sys
from micmon.model import Model
from micmon.monitor import Monitor, file_source
from micmon.detect import DetectorSettings
model = Model.load(sys.argv[1])
events = []
m = Monitor(model, file_source(sys.argv[2], spec=model.spec, hop=0.5, realtime=False),
            settings=DetectorSettings(threshold=0.6, k=2, n=3, m=2), hop=0.5, live=False,
            on_event=events.append)
m.run()
heavy = sorted(n for n in sys.modules if n.split(".")[0] in ("tensorflow", "keras"))
print(model.backend, len(events), heavy)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(trained_model_dir), str(recording)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.split()[:2] == ["litert", "2"] and out.strip().endswith("[]"), out


# -- live sources (lavfi plays a file in real time and looped, like a microphone) -------------
def _live(path: Path) -> str:
    return f"amovie={path}:loop=0,arealtime"


def _ffmpeg_children() -> list[int]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended between listing and reading
            continue
        for pid in children:
            try:
                if b"ffmpeg" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


@pytest.fixture
def short_loop(tmp_path: Path) -> Path:
    """8 s looped: beeps from 2 s to 5 s."""
    return (
        make_recording(tmp_path / "loop", seconds=8.0, events=[(2.0, 5.0)], fmt="wav", seed=3) / "audio.wav"
    )


class _Running:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.windows: list[WindowResult] = []
        self.events: list[Event] = []
        monitor.on_window = self.windows.append
        monitor.on_event = self.events.append
        self.thread = threading.Thread(target=monitor.run, daemon=True)

    def wait(self, predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events {[(e.kind, e.start) for e in self.events]}")
            time.sleep(0.05)


@pytest.fixture
def running(model) -> Iterator[callable]:  # noqa: ANN001
    started: list[_Running] = []

    def start(monitor: Monitor) -> _Running:
        run = _Running(monitor)
        started.append(run)
        run.thread.start()
        return run

    yield start
    for run in started:
        run.monitor.stop()
        run.thread.join(15)
        assert not run.thread.is_alive()


def test_ffmpeg_killed_reconnects_and_detects_again(
    model,
    short_loop: Path,
    running,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = Monitor(
        model,
        device_source("lavfi", _live(short_loop), spec=model.spec, hop=HOP),
        settings=SETTINGS,
        hop=HOP,
        initial_backoff=0.2,
    )
    with caplog.at_level(logging.INFO, logger="micmon"):
        run = running(monitor)
        run.wait(lambda: any(e.kind == "start" for e in run.events))
        (pid,) = _ffmpeg_children()
        os.kill(pid, signal.SIGKILL)
        run.wait(lambda: monitor.stats.reconnects >= 1)
        before = len(run.events)
        run.wait(lambda: any(e.kind == "start" for e in run.events[before:]))
    assert "reconnecting in" in caplog.text and "audio input is back" in caplog.text
    assert _ffmpeg_children() and _ffmpeg_children() != [pid]
    # Every start is ended (the device loss closes an open event).
    kinds = [e.kind for e in run.events]
    assert kinds[: 2 * kinds.count("end")] == ["start", "end"] * kinds.count("end")


def test_hung_capture_is_restarted(
    model,
    short_loop: Path,
    running,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = Monitor(
        model,
        device_source("lavfi", _live(short_loop), spec=model.spec, hop=HOP),
        settings=SETTINGS,
        hop=HOP,
        initial_backoff=0.2,
        stall_seconds=0,
    )
    with caplog.at_level(logging.WARNING, logger="micmon"):
        run = running(monitor)
        run.wait(lambda: len(run.windows) >= 2)
        (pid,) = _ffmpeg_children()
        os.kill(pid, signal.SIGSTOP)  # alive, but no more audio
        run.wait(lambda: monitor.stats.reconnects >= 1, timeout=30)
        windows = len(run.windows)
        run.wait(lambda: len(run.windows) > windows + 2)
    assert "no audio for" in caplog.text and pid not in _ffmpeg_children()


def test_stop_ends_open_events_and_flushes_actions(
    model,
    short_loop: Path,
    running,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    monitor = Monitor(
        model,
        device_source("lavfi", _live(short_loop), spec=model.spec, hop=HOP),
        settings=SETTINGS,
        hop=HOP,
        actions=[PrintAction(json_lines=True, stream=out), ClipAction(tmp_path, format="wav", pre_roll=1.0)],
    )
    run = running(monitor)
    run.wait(lambda: any(e.kind == "start" for e in run.events))
    monitor.stop()
    run.thread.join(15)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["event"] for d in lines][-2:] == ["start", "end"]
    assert lines[-1]["clip"] and Path(lines[-1]["clip"]).exists()
    assert _ffmpeg_children() == []


@pytest.mark.mqtt
def test_broker_down_monitor_keeps_listening(
    model,
    short_loop: Path,
    running,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    with MosquittoBroker() as broker, Subscriber(broker, "micmon/#") as sub:
        mqtt = MqttAction(broker.url, labels=model.labels, node_id="live")
        monitor = Monitor(
            model,
            device_source("lavfi", _live(short_loop), spec=model.spec, hop=HOP),
            settings=SETTINGS,
            hop=HOP,
            actions=Actions([mqtt]),
        )
        with caplog.at_level(logging.INFO, logger="micmon"):
            run = running(monitor)
            sub.wait_for(lambda m: m.topic == "micmon/live/event", timeout=20)
            broker.stop()
            windows = len(run.windows)
            run.wait(lambda: len(run.windows) >= windows + 6)  # still listening
            assert "lost the broker" in caplog.text
            broker.start()
            assert mqtt.wait_connected(20)
        assert "reconnected" in caplog.text
    with MosquittoBroker(broker.port) as again, Subscriber(again, "micmon/#") as late:
        assert mqtt.wait_connected(20)
        late.wait_for(lambda m: m.topic == "micmon/live/availability" and m.payload == "online")


def test_file_errors_and_bad_parameters(model, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 100)
    monitor = Monitor(model, file_source(bad, spec=model.spec, hop=HOP), hop=HOP, live=False)
    with pytest.raises(AudioError):
        monitor.run()
    with pytest.raises(
        ParameterError, match="hop: seconds between window starts must be > 0 and at most the window"
    ):
        Listener(model, hop=5.0)
    listener = Listener(model)
    assert listener.hop == pytest.approx(model.spec.window_seconds / 4)
    with pytest.raises(ParameterError, match="window: got 10 samples"):
        listener.process_window(np.zeros(10, dtype=np.int16), 0.0)


class _LoudnessModel:
    """A stand-in scorer: 'positive' when the window is loud. Tests the audio plumbing only."""

    labels = ("negative", "positive")

    def __init__(self, spec) -> None:  # noqa: ANN001
        self.spec = spec

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        loud = (np.abs(windows.astype(np.float64)).mean(axis=1) > 1000).astype(np.float64)
        return np.stack([1 - loud, loud], axis=1)


@pytest.mark.parametrize("chunk", [1000, 8000, 123_457])
def test_clip_audio_is_the_exact_stream_slice_with_pre_roll(chunk: int) -> None:
    from micmon.features import FeatureSpec

    spec = FeatureSpec(sample_rate=8000, window_seconds=1.0, low_freq=20, high_freq=4000, bins=10)
    rate = spec.sample_rate
    stream = (np.arange(30 * rate) % 1000).astype(np.int16)  # quiet, and every sample unique
    stream[12 * rate : 16 * rate] += 5000  # loud from 12 s to 16 s
    listener = Listener(_LoudnessModel(spec), DetectorSettings(), hop=0.25, clip_seconds=10.0, pre_roll=3.0)
    got = []
    for i in range(0, len(stream), chunk):
        got += listener.feed(stream[i : i + chunk])
    (start, _), (end, clip) = got
    assert start.kind == "start" and end.kind == "end" and clip is not None
    a = int(round((end.start - 3.0) * rate))
    b = int(round((end.end or 0) * rate))
    assert clip.start == pytest.approx(end.start - 3.0)
    np.testing.assert_array_equal(clip.samples, stream[a:b])


class _SureScorer:
    """A model that scores every window as the positive sound with 0.99, silence included."""

    def __init__(self, model) -> None:  # noqa: ANN001
        self.labels, self.spec = model.labels, model.spec

    def predict_proba(self, samples) -> np.ndarray:  # noqa: ANN001
        row = [0.99 if label == "positive" else 0.01 for label in self.labels]
        return np.tile(np.asarray(row), (len(samples), 1))


class _StatusRecorder(PrintAction):
    def __init__(self) -> None:
        super().__init__(stream=io.StringIO())
        self.health: list[bool] = []

    def audio_status(self, healthy: bool, level_dbfs: float | None) -> None:
        if not self.health or self.health[-1] != healthy:
            self.health.append(healthy)


def test_muted_microphone_raises_no_event_and_is_reported_once(
    model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # noqa: ANN001
    silent = tmp_path / "muted.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"anullsrc=r={model.spec.sample_rate}:cl=mono",
            "-t",
            "12",
            str(silent),
        ],
        check=True,
    )
    recorder = _StatusRecorder()
    with caplog.at_level(logging.WARNING, logger="micmon"):
        monitor, events = _replay(
            _SureScorer(model), silent, actions=Actions([recorder]), silence_seconds=4.0
        )
    assert events == [] and monitor.stats.events == 0
    assert monitor.stats.silent and monitor.stats.silent_seconds >= 10
    assert monitor.stats.silent_windows == monitor.stats.windows == monitor.stats.gated
    assert caplog.text.count("digital silence") == 1 and "muted" in caplog.text
    assert recorder.health == [True, False]  # audio flowed, then counted as not flowing
    # Sound after the silence clears the flag (and says so once).
    sound = WindowResult(20.0, 22.0, -30.0, {}, False, ())
    with caplog.at_level(logging.WARNING, logger="micmon"):
        monitor.status.window(sound)
        monitor._track_silence(sound)
    assert not monitor.stats.silent and monitor.stats.silent_seconds == 0
    assert "no longer silent" in caplog.text and monitor.status.health == "ok"


def test_device_that_never_opens_is_an_error_with_a_hint(model) -> None:  # noqa: ANN001
    monitor = Monitor(
        model,
        device_source("alsa", "hw:97,0", spec=model.spec, hop=HOP),
        settings=SETTINGS,
        hop=HOP,
        initial_backoff=0.1,
    )
    started = time.monotonic()
    with pytest.raises(AudioError, match=r"alsa:hw:97,0: .*arecord -l.*pactl list sources short"):
        monitor.run()
    assert time.monotonic() - started < 15 and monitor.stats.reconnects == 0


def test_fast_replay_reports_no_event_in_the_future(model, recording: Path) -> None:  # noqa: ANN001
    from datetime import datetime, timezone

    os.utime(recording, (time.time() - 3600, time.time() - 3600))  # recorded an hour ago
    _, events = _replay(model, recording)
    now = datetime.now(timezone.utc)
    assert events
    times = [datetime.fromisoformat(e.to_dict()["time"]) for e in events]
    assert all(t <= now for t in times), [e.to_dict()["time"] for e in events]
    # Stream time 0 is when the recording started: an hour ago, minus its 20 s.
    assert abs((now - events[0].origin).total_seconds() - 3620) < 60
