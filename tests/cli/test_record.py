"""`micmon record` with the real ffmpeg: lavfi, a real PulseAudio server, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import make_tone

SINE = "sine=frequency=1000"


def _decode(path: Path, rate: int = 16000) -> np.ndarray:
    """Decode a file fully with ffmpeg (fails on a broken file) to float mono."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-xerror",
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
    )
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768


def _peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("fmt", ["mp3", "wav", "flac"])
def test_record_lavfi_for_a_duration(invoke, isolated: Path, fmt: str) -> None:
    result = invoke(
        [
            "record",
            "--audio-dir",
            "audio",
            "--system",
            "lavfi",
            "--device",
            SINE,
            "--duration",
            "2",
            "--format",
            fmt,
        ]
    )
    assert result.exit_code == 0, result.output
    target = isolated / "audio" / "sample_1" / f"audio.{fmt}"
    assert f"saved {target.relative_to(isolated)}" in result.stdout
    x = _decode(target)
    assert abs(len(x) / 16000 - 2.0) < 0.1
    assert abs(_peak_hz(x) - 1000) < 10
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_record_mono_from_two_microphones_apart_keeps_the_sound(invoke, isolated: Path) -> None:
    # a stereo source whose right channel hears an 800 Hz tone half a period (0.625 ms) later:
    # averaging would record silence; mono is the first channel, as decoding takes it
    two_mics = "aevalsrc=0.3*sin(2*PI*800*t)|0.3*sin(2*PI*800*(t-0.000625)):s=16000"
    args = ["record", "--audio-dir", "audio", "--system", "lavfi", "--device", two_mics]
    result = invoke([*args, "--duration", "1", "--format", "wav"])
    assert result.exit_code == 0, result.output
    x = _decode(isolated / "audio" / "sample_1" / "audio.wav")
    rms = float(np.sqrt(np.mean(x[1600:] ** 2)))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_record_names_the_next_free_sample_and_refuses_existing_names(
    invoke, assert_error, isolated: Path
) -> None:
    (isolated / "audio" / "sample_7").mkdir(parents=True)
    args = ["record", "--audio-dir", "audio", "--system", "lavfi", "--device", SINE, "--duration", "0.5"]
    assert invoke(args).exit_code == 0
    assert (isolated / "audio" / "sample_8" / "audio.mp3").is_file()
    assert_error(invoke([*args, "sample_8"]), "sample_8", "already exists", "--force")
    assert invoke([*args, "sample_8", "--force"]).exit_code == 0


def test_record_errors(invoke, assert_error) -> None:
    base = ["record", "--audio-dir", "audio", "--duration", "1"]
    assert_error(
        invoke([*base, "--system", "lavfi", "--device", SINE, "--ffmpeg", "/no/such/ffmpeg"]),
        "/no/such/ffmpeg",
        "does not exist",
        "install",
    )
    line = assert_error(
        invoke([*base, "--system", "lavfi", "--device", "nosuchsource=x"]),
        "lavfi:nosuchsource=x",
        "recording failed",
    )
    assert "--device" in line
    assert not list(Path("audio").rglob("audio.mp3"))
    assert_error(invoke([*base, "--system", "lavfi", "--device", SINE, "../evil"]), "NAME")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_with_a_signal_finishes_a_playable_file(isolated: Path, sig: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "micmon_cli",
            "record",
            "--audio-dir",
            "audio",
            "--system",
            "lavfi",
            "--device",
            SINE,
            "take",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    partial = isolated / "audio" / "take" / ".audio.mp3.partial"
    deadline = time.monotonic() + 30
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait for the capture to run, however slowly Python started
    time.sleep(1.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    target = isolated / "audio" / "take" / "audio.mp3"
    assert "saved" in out
    seconds = len(_decode(target)) / 16000
    assert 1.0 < seconds < 4.0


@pytest.mark.pulse
def test_record_from_a_real_pulseaudio_server(invoke, pulse_env, isolated: Path) -> None:
    tone = make_tone(isolated / "tone.wav", 2000, 6)
    player = pulse_env.play(tone)
    try:
        result = invoke(
            [
                "record",
                "--audio-dir",
                "audio",
                "--system",
                "pulse",
                "--device",
                pulse_env.monitor,
                "--duration",
                "2",
                "--format",
                "wav",
                "from_pulse",
            ]
        )
    finally:
        player.terminate()
        player.wait()
    assert result.exit_code == 0, result.output
    x = _decode(isolated / "audio" / "from_pulse" / "audio.wav")
    assert abs(len(x) / 16000 - 2.0) < 0.2
    assert abs(_peak_hz(x) - 2000) < 20


def test_level_meter_sees_the_input(isolated: Path) -> None:
    from micmon.audio.recorder import CODECS, Recording

    levels: list[tuple[float, float]] = []
    rec = Recording(
        isolated / "m" / "audio.wav",
        system="lavfi",
        device="aevalsrc=0.5*sin(2*PI*440*t):s=16000",
        sample_rate=16000,
        channels=1,
        duration=1.5,
        codec_args=CODECS["wav"],
        ffmpeg_bin="ffmpeg",
    )
    rec.run(lambda r: levels.append((r.seconds, r.level)))
    # lavfi runs in real time (-re), so the meter ticks while recording, with a rising clock.
    assert len(levels) >= 5
    seconds = [s for s, _ in levels]
    assert seconds == sorted(seconds) and seconds[-1] > 0.5
    # A sine of amplitude 0.5 has an RMS level of 20*log10(0.5/sqrt(2)) = -9.0 dBFS.
    assert abs(levels[-1][1] - -9.0) < 0.5
    assert abs(rec.mean_dbfs - -9.0) < 0.5


def test_silent_input_is_reported(invoke, isolated: Path) -> None:
    result = invoke(
        [
            "record",
            "--audio-dir",
            "audio",
            "--system",
            "lavfi",
            "--device",
            "anullsrc=r=16000",
            "--duration",
            "0.5",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "silent" in result.stderr and "-inf dBFS" in result.stdout


def test_force_replaces_the_old_recording_in_any_format(invoke, isolated: Path) -> None:
    args = [
        "record",
        "--audio-dir",
        "audio",
        "--system",
        "lavfi",
        "--device",
        SINE,
        "--duration",
        "0.5",
        "take",
    ]
    assert invoke([*args, "--format", "wav"]).exit_code == 0
    (isolated / "audio" / "take" / "labels.json").write_text('{"00:00": "negative"}')
    result = invoke([*args, "--format", "flac", "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (isolated / "audio" / "take").iterdir()) == ["audio.flac", "labels.json"]
    assert "labels.json is from the earlier recording" in " ".join(result.stderr.split())
