"""Test audio made on the spot: numpy signals encoded with the real ffmpeg, and labelled sample folders."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

BEEP_HZ = 3000.0
BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    """Import one of the bench scripts (they import each other by bare name, from `bench/`)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Terminate a test server process, killing it if it does not exit within `timeout` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, raising on failure."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def encode(path: str | os.PathLike[str], samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """Encode float samples in [-1, 1] (shape (n,) or (n, channels)) to `path`; format from the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    args = ["-f", "s16le", "-ar", str(rate), "-ac", str(channels), "-i", "pipe:0"]
    if path.suffix == ".mp3":
        args += ["-b:a", "128k"]
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(path)],
        input=pcm.tobytes(),
        check=False,
        capture_output=True,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode())
    return path


def make_tone(
    path: str | os.PathLike[str], freq: float, seconds: float, rate: int = 44100, channels: int = 1
) -> Path:
    """Write a sine tone with ffmpeg's lavfi source."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={freq}:duration={seconds}:sample_rate={rate}",
        "-ac",
        str(channels),
        str(path),
    )
    return path


def background(seconds: float, rate: int, rng: np.random.Generator, level: float = 0.05) -> np.ndarray:
    """Return noise plus a low hum, as a household background."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    hum = 0.03 * np.sin(2 * np.pi * 100 * t) + 0.015 * np.sin(2 * np.pi * 200 * t)
    return (level * rng.standard_normal(n) + hum).astype(np.float32)


def beeps(seconds: float, rate: int, freq: float = BEEP_HZ, level: float = 0.4) -> np.ndarray:
    """Return an alarm-clock-like signal: 0.25 s beeps every 0.5 s."""
    t = np.arange(int(seconds * rate)) / rate
    gate = (t % 0.5) < 0.25
    return (level * np.sin(2 * np.pi * freq * t) * gate).astype(np.float32)


def make_recording(
    folder: str | os.PathLike[str],
    *,
    seconds: float = 40.0,
    events: Sequence[tuple[float, float]] = ((10.0, 20.0),),
    rate: int = 44100,
    fmt: str = "mp3",
    seed: int = 0,
    labels: bool = True,
    positive: str = "positive",
    negative: str = "negative",
    freq: float = BEEP_HZ,
) -> Path:
    """Write folder/audio.<fmt> (background with beeping events) and its labels.json; return the folder."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    signal = background(seconds, rate, rng)
    mapping: dict[str, str] = {"00:00": negative}
    for start, end in events:
        a, b = int(start * rate), int(end * rate)
        signal[a:b] += beeps((b - a) / rate, rate, freq)
        mapping[_mmss(start)] = positive
        if end < seconds:
            mapping[_mmss(end)] = negative
    encode(folder / f"audio.{fmt}", signal, rate)
    if labels:
        (folder / "labels.json").write_text(json.dumps(mapping, indent=2))
    return folder


def _mmss(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    text = f"{int(minutes):02d}:{int(secs):02d}"
    frac = round(seconds - int(seconds), 3)
    return text + (f".{int(round(frac * 1000)):03d}" if frac else "")


def make_workspace(
    root: str | os.PathLike[str],
    *,
    recordings: int = 4,
    seconds: float = 40.0,
    rate: int = 44100,
    fmt: str = "mp3",
) -> Path:
    """Write `recordings` sample folders under root/audio, with events at varying times."""
    root = Path(root)
    for i in range(recordings):
        start = 6.0 + 4.0 * i
        make_recording(
            root / "audio" / f"sample_{i + 1}",
            seconds=seconds,
            rate=rate,
            fmt=fmt,
            events=((start, start + 12.0),),
            seed=i,
        )
    return root / "audio"


def beep_windows(
    n: int, *, positive: bool, rng: np.random.Generator, rate: int = 16000, freq: float = 3000.0
) -> np.ndarray:
    """Return n int16 one-second windows: noise + hum, with 3 kHz beeps when positive."""
    t = np.arange(rate) / rate
    out = []
    for _ in range(n):
        level = rng.uniform(0.01, 0.08)
        x = level * rng.standard_normal(rate) + 0.02 * np.sin(2 * np.pi * 100 * t)
        if positive:
            gate = ((t + rng.uniform(0, 0.5)) % 0.5) < 0.25
            x += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * freq * t) * gate
        out.append((np.clip(x, -1, 1) * 32767).astype(np.int16))
    return np.stack(out)
