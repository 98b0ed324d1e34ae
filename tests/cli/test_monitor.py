"""`micmon monitor`: a real PulseAudio null sink, file replay, signals and config errors."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import background, beeps, encode
from micmon_cli.app import app
from pulse_server import PulseServer

MICMON = str(Path(sys.executable).with_name("micmon"))
CONFIG = """\
monitor:
  hop: 0.5
  threshold: 0.6
  k: 2
  n: 3
  m: 2
  min_dbfs: -60
"""
LEAD_IN, SOUND, TAIL = 1.5, 4.0, 3.0


@pytest.fixture(scope="module")
def positive_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Background, then 4 s of beeps (the positive sound) over it, then background."""
    rate = 44100
    rng = np.random.default_rng(11)
    signal_ = background(LEAD_IN + SOUND + TAIL, rate, rng)
    a = int(LEAD_IN * rate)
    signal_[a : a + int(SOUND * rate)] += beeps(SOUND, rate)
    return encode(tmp_path_factory.mktemp("play") / "positive.wav", signal_, rate)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "micmon.yaml"
    path.write_text(CONFIG)
    return path


class Process:
    """A `micmon` child process whose stdout JSON lines are collected as they arrive."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [MICMON, *args],
            env={**env, "MICMON_NO_LIVE": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put((time.monotonic(), json.loads(line)))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def next_event(self, timeout: float) -> tuple[float, dict]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no event in {timeout} s; stderr:\n{''.join(self.stderr)}") from None

    def terminate(self) -> tuple[int, str]:
        """SIGTERM, wait for the exit and for both pipes to be read to the end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        for thread in self._readers:
            thread.join(timeout=5)
        return code, "".join(self.stderr)


def _wait_for_capture(pulse: PulseServer, timeout: float = 20.0) -> None:
    """Wait until a client (ffmpeg) records from the server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["pactl", "list", "short", "source-outputs"],
            env=pulse.env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError("the monitor never started recording from PulseAudio")


@pytest.mark.pulse
def test_pulse_sink_one_start_and_one_end_in_time(
    pulse_server: PulseServer, trained_model_dir: Path, positive_wav: Path, config: Path
) -> None:
    pulse = pulse_server
    env = {k: v for k, v in pulse.env.items() if k != "MICMON_CONFIG"}
    mon = Process(
        [
            "--config",
            str(config),
            "monitor",
            "--model",
            str(trained_model_dir),
            "--system",
            "pulse",
            "--device",
            pulse.monitor,
            "--json",
        ],
        env,
    )
    try:
        _wait_for_capture(pulse)
        time.sleep(1.0)  # some silence first (gated by min_dbfs)
        began = time.monotonic() + LEAD_IN
        player = pulse.play(positive_wav)
        start_at, start = mon.next_event(timeout=20)
        assert start["event"] == "start" and start["label"] == "positive"
        window, hop = 2.0, 0.5
        assert start_at - began <= window + hop + 1.0, f"start {start_at - began:.2f} s late"
        end_at, end = mon.next_event(timeout=20)
        assert end["event"] == "end" and end["label"] == "positive"
        assert end["duration"] == pytest.approx(SOUND, abs=1.5)
        assert player.wait(10) == 0
        time.sleep(1.0)
        assert mon.lines.empty()  # exactly one start and one end
    finally:
        code, err = mon.terminate()
    assert code == 0, err
    assert "stopped after" in err


def test_sigterm_ends_the_open_event_and_exits_0(
    trained_model_dir: Path, positive_wav: Path, config: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    mon = Process(
        [
            "--config",
            str(config),
            "monitor",
            "--model",
            str(trained_model_dir),
            "--input",
            str(positive_wav),
            "--json",
        ],
        env,
    )
    _, start = mon.next_event(timeout=30)
    assert start["event"] == "start"
    code, err = mon.terminate()
    assert code == 0, err
    lines = [json.loads(line) for line in mon.stdout]
    assert [d["event"] for d in lines] == ["start", "end"]


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_fast_replay_prints_only_json_lines(
    trained_model_dir: Path, positive_wav: Path, config: Path, tmp_path: Path
) -> None:
    config.write_text(
        CONFIG + "  actions:\n    - type: clip\n      format: wav\n      folder: clips\n      pre_roll: 1\n"
    )
    code, out, err = run(
        "--config",
        str(config),
        "monitor",
        "--model",
        str(trained_model_dir),
        "--input",
        str(positive_wav),
        "--fast",
        "--json",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["event"], d["label"]) for d in lines] == [("start", "positive"), ("end", "positive")]
    clip = Path(lines[1]["clip"])
    assert clip.exists() and clip.parent == tmp_path / "clips"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("monitor:\n  actions:\n    - type: sms\n", "monitor.actions.0: input tag 'sms'"),
        ("monitor:\n  threshold: 1.5\n", "monitor.threshold: input should be less than or equal"),
        ("monitor:\n  thresholds:\n    positive: 0\n", "thresholds.positive must be a score"),
        ("monitor:\n  k: 3\n  n: 2\n", "k: 3 windows above the threshold can never happen"),
        ("monitor:\n  thresholds:\n    cry: 0.5\n", "unknown label 'cry'"),
        (
            "monitor:\n  actions:\n    - type: mqtt\n      broker: http://broker\n",
            "broker: unknown scheme 'http'",
        ),
        ("monitor:\n  actions:\n    - type: mqtt\n      broker: 'mqtt://host:99999'\n", "not a valid URL"),
        (
            "monitor:\n  actions:\n    - type: webhook\n      url: hook.local\n",
            "expected an http:// or https:// URL",
        ),
        (
            "monitor:\n  actions:\n    - type: command\n      command: [no-such-prog-micmon]\n",
            "monitor.actions[0] (command): command: 'no-such-prog-micmon' is not an executable",
        ),
    ],
)
def test_bad_config_values_get_clear_messages(
    trained_model_dir: Path, positive_wav: Path, tmp_path: Path, yaml_text: str, message: str
) -> None:
    config = tmp_path / "micmon.yaml"
    config.write_text(yaml_text)
    code, out, err = run(
        "--config",
        str(config),
        "monitor",
        "--model",
        str(trained_model_dir),
        "--input",
        str(positive_wav),
        "--fast",
        "--json",
    )
    assert code == 1
    assert message in " ".join(err.split()), err
    assert out == ""


def test_missing_model_says_how_to_fix(tmp_path: Path, positive_wav: Path) -> None:
    code, _, err = run("monitor", "--model", str(tmp_path / "nope"), "--input", str(positive_wav))
    assert code == 1 and "no such model folder" in err


def test_settings_come_from_calibration_then_config(tmp_path: Path) -> None:
    from micmon.detect import model_settings
    from micmon_cli.config import load_config

    path = tmp_path / "micmon.yaml"
    path.write_text("training:\n  background_label: quiet\nmonitor:\n  k: 2\n  n: 3\n")
    cfg = load_config(path)
    labels = ["quiet", "negative", "cry"]

    def settings_for(metadata: dict):  # noqa: ANN202 - as the monitor command computes them
        return model_settings(
            metadata, labels, overrides=cfg.detector_overrides(), background_label=cfg.background_label()
        )

    settings = settings_for({})
    assert settings.targets == ("negative", "cry") and (settings.k, settings.n) == (2, 3)
    calibrated = {"detector": {"threshold": 0.8, "k": 1, "n": 1, "m": 5}}
    settings = settings_for(calibrated)
    assert (settings.threshold, settings.k, settings.n, settings.m) == (0.8, 2, 3, 5)


def _calibrated_copy(model_dir: Path, tmp_path: Path, **detector: object) -> Path:
    import shutil

    from micmon.detect import DetectorSettings
    from micmon.model import Model

    copy = tmp_path / "calibrated_model"
    shutil.copytree(model_dir, copy)
    Model.update_metadata(copy, detector=DetectorSettings(**detector).to_dict())  # type: ignore[arg-type]
    return copy


def test_explicit_threshold_beats_the_calibration(
    trained_model_dir: Path, positive_wav: Path, tmp_path: Path
) -> None:
    model = _calibrated_copy(trained_model_dir, tmp_path, thresholds={"positive": 0.35}, k=1, n=1)
    code, _, err = run("monitor", "--model", str(model), "--input", str(positive_wav), "--fast", "--json")
    assert code == 0, err
    assert "positive (threshold 0.35" in " ".join(err.split())
    code, _, err = run(
        "monitor",
        "--model",
        str(model),
        "--input",
        str(positive_wav),
        "--fast",
        "--json",
        "--threshold",
        "0.9",
    )
    assert code == 0, err
    assert "positive (threshold 0.9" in " ".join(err.split())


def test_library_monitor_applies_the_stored_calibration(trained_model_dir: Path, tmp_path: Path) -> None:
    from micmon.model import Model
    from micmon.monitor import Listener

    model_dir = _calibrated_copy(trained_model_dir, tmp_path, thresholds={"positive": 0.42}, k=2, n=3)
    from micmon.model import Model as _Model

    _Model.update_metadata(model_dir, calibration={"hop_seconds": 0.4})
    listener = Listener(Model.load(model_dir))
    assert listener.detector.thresholds == {"positive": 0.42}
    assert (listener.detector.settings.k, listener.detector.settings.n) == (2, 3)
    assert listener.hop == 0.4


def test_predict_reports_the_events_monitor_raises(
    trained_model_dir: Path, positive_wav: Path, config: Path
) -> None:
    code, out, err = run(
        "--config",
        str(config),
        "monitor",
        "--model",
        str(trained_model_dir),
        "--input",
        str(positive_wav),
        "--fast",
        "--json",
    )
    assert code == 0, err
    raised = [
        (d["label"], d["start_seconds"], d["end_seconds"])
        for d in map(json.loads, out.splitlines())
        if d["event"] == "end"
    ]
    code, out, err = run(
        "--config", str(config), "predict", "--model", str(trained_model_dir), "--json", str(positive_wav)
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    windows = [r for r in rows if r["type"] == "window"]
    assert windows[1]["start"] - windows[0]["start"] == pytest.approx(0.5)  # monitor.hop
    reported = [(r["label"], r["start"], r["end"]) for r in rows if r["type"] == "event"]
    assert raised and reported == raised
