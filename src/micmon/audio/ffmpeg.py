"""Locating and running ffmpeg, ffprobe and ffplay."""

from __future__ import annotations

import os
import shutil
import subprocess

from micmon.errors import AudioError, FFmpegNotFoundError

INSTALL_HINT = "install it (e.g. `sudo apt-get install ffmpeg`) or pass its path"


def find_executable(name: str = "ffmpeg") -> str:
    """Return the full path of the ffmpeg-family executable `name`, or raise FFmpegNotFoundError."""
    path = os.path.expanduser(name)
    if os.sep in path:  # a path, not a name to look up on PATH: say what is wrong with it
        if not os.path.exists(path):
            raise FFmpegNotFoundError(f"{name}: does not exist; {INSTALL_HINT}")
        if os.path.isdir(path):
            raise FFmpegNotFoundError(
                f"{name}: is a folder, not the {os.path.basename(path)} program; {INSTALL_HINT}"
            )
        if not os.access(path, os.X_OK):
            raise FFmpegNotFoundError(f"{name}: is not executable; `chmod +x {name}` or {INSTALL_HINT}")
        return os.path.abspath(path)
    found = shutil.which(path)
    if found is None:
        raise FFmpegNotFoundError(f"{name}: not found on PATH; {INSTALL_HINT}")
    return found


def find_ffmpeg(name: str = "ffmpeg") -> str:
    """Return the full path of ffmpeg, or raise FFmpegNotFoundError."""
    return find_executable(name)


def sibling_tool(ffmpeg_bin: str, tool: str) -> str:
    """Return the path of `tool` (ffprobe, ffplay) next to `ffmpeg_bin`, else on PATH."""
    path = find_executable(ffmpeg_bin)
    candidate = os.path.join(os.path.dirname(path), tool)
    if os.path.basename(path).startswith("ffmpeg") and os.access(candidate, os.X_OK):
        return candidate
    return find_executable(tool)


def probe_duration(path: str | os.PathLike[str], *, ffmpeg_bin: str = "ffmpeg") -> float:
    """Return the duration of an audio file in seconds."""
    ffprobe = sibling_tool(ffmpeg_bin, "ffprobe")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); record it again or remove it")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", os.fspath(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    text = result.stdout.strip()
    try:
        value = float(text)
    except ValueError:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no duration"
        raise AudioError(f"{path}: ffprobe could not read it ({reason})") from None
    return value


#: How a recording with more channels than asked for becomes mono: its first channel, as one
#: microphone heard it. Averaging the channels of two microphones a few centimetres apart (a phone,
#: a laptop, a stereo USB microphone) adds each sound to a copy of itself delayed by a fraction of
#: a millisecond: a comb filter whose notches fall inside the speech band (a 0.4 ms delay cuts
#: 1.25, 3.75 and 6.25 kHz), so one recording's chime loses the partials another's keeps.
MONO_FILTER = "pan=mono|c0=c0"


def audio_filters(channels: int, *before: str) -> list[str]:
    """Return ffmpeg's -af option for output with `channels` channels: `before`, then the mono rule."""
    chain = [*before, MONO_FILTER] if channels == 1 else list(before)
    return ["-af", ",".join(chain)] if chain else []


def pcm_output_args(sample_rate: int, channels: int) -> list[str]:
    """Return ffmpeg output arguments for raw signed 16-bit little-endian PCM on stdout."""
    return ["-vn", *audio_filters(channels), *pcm_pipe_args(sample_rate, channels)]


def pcm_pipe_args(sample_rate: int, channels: int) -> list[str]:
    """Return the format part of `pcm_output_args` alone, for an output fed by a -filter_complex graph."""
    return ["-f", "s16le", "-acodec", "pcm_s16le", "-ar", str(sample_rate), "-ac", str(channels), "pipe:1"]
