"""Checks on an input file before a model scores it: the cases that give a confident wrong answer.

A file without a single whole window gives "0 windows" and no event, which reads like "nothing
happened"; a file recorded at a far lower sample rate than the model's lacks the frequencies the
model listens to, so its scores mean little. `check_input` says so before any scoring.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from micmon.audio.ffmpeg import sibling_tool
from micmon.errors import AudioError, ParameterError

#: A file whose sample rate is below this share of the model's lacks most of the model's band.
LOW_RATE_FRACTION = 0.5


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about a file's first audio stream."""

    path: str
    duration: float
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class InputCheck:
    """The outcome of `check_input`: warnings to show, and why nothing can be scored (if so)."""

    info: AudioInfo
    windows: int
    warnings: tuple[str, ...]
    #: Set when the file yields no whole window: the message to show instead of "0 windows".
    problem: str | None = None

    @property
    def usable(self) -> bool:
        """False when the file yields no whole window (nothing can be scored)."""
        return self.problem is None


def probe_audio(path: str | os.PathLike[str], *, ffmpeg_bin: str = "ffmpeg") -> AudioInfo:
    """Return duration, sample rate and channels of `path`; raise AudioError if it holds no audio."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); record it again or remove it")
    ffprobe = sibling_tool(ffmpeg_bin, "ffprobe")
    result = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate,channels:format=duration",
            "-of",
            "json",
            path,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        data: dict[str, Any] = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    streams = data.get("streams") or []
    if result.returncode != 0 or not streams:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no audio stream"
        raise AudioError(f"{path}: not an audio file ffmpeg can read ({reason})")
    stream = streams[0]
    try:
        duration = float((data.get("format") or {}).get("duration", "nan"))
    except (TypeError, ValueError):
        duration = float("nan")
    return AudioInfo(
        path=path,
        duration=duration,
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
    )


def check_input(
    path: str | os.PathLike[str],
    spec: Any,
    *,
    start: float = 0.0,
    duration: float | None = None,
    hop: float | None = None,
    ffmpeg_bin: str = "ffmpeg",
) -> InputCheck:
    """Check `path` against a model's FeatureSpec: warn about a far lower sample rate and no windows.

    `start`/`duration` are the part of the file that will be scored. Raises AudioError when the
    file is missing, empty or holds no audio stream.
    """
    if hop is not None and not hop > 0:
        raise ParameterError(f"hop: must be > 0 seconds, got {hop!r}")
    info = probe_audio(path, ffmpeg_bin=ffmpeg_bin)
    warnings: list[str] = []
    if info.sample_rate and info.sample_rate < spec.sample_rate * LOW_RATE_FRACTION:
        warnings.append(
            f"{info.path}: recorded at {info.sample_rate} Hz, the model listens at "
            f"{spec.sample_rate} Hz (up to {spec.high_freq:g} Hz); the file has nothing above "
            f"{info.sample_rate / 2:g} Hz, so its scores are unreliable; record at "
            f"{spec.sample_rate} Hz or more"
        )
    seconds = info.duration - start if info.duration == info.duration else 0.0
    if duration is not None:
        seconds = min(seconds, duration)
    window = float(spec.window_seconds)
    step = window if hop is None else float(hop)
    windows = 0 if seconds < window - 1e-9 else int((seconds - window + 1e-9) // step) + 1
    problem = None
    if windows == 0 and start > 0 and start + window > info.duration >= window:  # a NaN length compares False
        problem = (
            f"{info.path}: start {start:g} s leaves {max(seconds, 0.0):.2f} s of its "
            f"{info.duration:.2f} s, less than one {window:g} s window; start earlier"
        )
    elif windows == 0:
        problem = (
            f"{info.path}: {max(seconds, 0.0):.2f} s of audio is shorter than one "
            f"{window:g} s window; nothing to score (use a longer recording)"
        )
    return InputCheck(info=info, windows=windows, warnings=tuple(warnings), problem=problem)
