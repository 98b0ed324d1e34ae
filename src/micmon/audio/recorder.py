"""Record from a device into a sample folder's audio file: one ffmpeg capture, finished cleanly.

`Recording` writes through a hidden temporary file that is renamed into place only once ffmpeg has
finished it, and feeds a low-rate mono copy of the capture to a level meter. Ctrl-C or SIGTERM
stops it with a complete, playable file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Literal, get_args

log = logging.getLogger(__name__)

#: Rate and chunk of the low-rate mono copy of the capture that feeds the level meter.
METER_RATE = 8000
METER_CHUNK_SECONDS = 0.1
#: Seconds ffmpeg gets to finish the file after 'q' before it is interrupted, then killed.
STOP_GRACE_SECONDS = 5.0
#: A recording whose mean level is below this is reported as silent.
SILENT_DBFS = -70.0
#: The file formats `record` writes.
RecordFormat = Literal["mp3", "wav", "flac"]
RECORD_FORMATS: tuple[str, ...] = get_args(RecordFormat)
#: Audio codec arguments per output format (one per `RECORD_FORMATS`).
CODECS: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-q:a", "2"],
    "wav": ["-c:a", "pcm_s16le"],
    "flac": ["-c:a", "flac"],
}
NAME_RE = re.compile(r"^[^/\\.][^/\\]*$")
_SAMPLE_RE = re.compile(r"^sample_(\d+)$")


class _Stop(Exception):
    """Raised in the main thread by the SIGINT/SIGTERM handler."""


class Recording:
    """One ffmpeg capture writing `target` through a temporary file, with a low-rate level feed.

    `codec_args` are ffmpeg's encoder arguments (see `CODECS`); `duration` None records until
    stopped. `run()` blocks until the end; `level`, `seconds` and `mean_dbfs` follow the capture.
    """

    def __init__(
        self,
        target: Path,
        *,
        system: str,
        device: str,
        sample_rate: int,
        channels: int,
        duration: float | None,
        codec_args: list[str],
        ffmpeg_bin: str,
    ) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.partial")
        self.fmt = target.suffix.lstrip(".")
        self.system, self.device = system, device
        self.sample_rate, self.channels = sample_rate, channels
        self.duration = duration
        self.codec_args = codec_args
        self.ffmpeg_bin = ffmpeg_bin
        self.level = float("-inf")
        self.seconds = 0.0
        self._energy = 0.0
        self._count = 0
        self._stderr: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the ffmpeg command line: the file plus an s16le copy on stdout for the meter."""
        from micmon.audio.ffmpeg import audio_filters, find_ffmpeg, pcm_pipe_args

        # A synthetic lavfi source would run as fast as the CPU allows; -re makes it behave
        # like a device, so the meter and Ctrl-C work the same way.
        realtime = ["-re"] if self.system == "lavfi" else []
        limit = ["-t", f"{self.duration:.3f}"] if self.duration else []
        # Live inputs (pulse) stamp packets with the wall clock, so a timestamp-based -t cut a
        # "2 s" recording to ~1.3 s of audio; restamping by sample count makes -t count samples.
        # Mono output takes the first channel (micmon.audio.ffmpeg.MONO_FILTER), as decoding does.
        restamp = "asetpts=N/SR/TB"
        return [
            find_ffmpeg(self.ffmpeg_bin),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *realtime,
            "-f",
            self.system,
            "-i",
            self.device,
            "-map",
            "0:a:0",
            *audio_filters(self.channels, restamp),
            *limit,
            "-ar",
            str(self.sample_rate),
            "-ac",
            str(self.channels),
            *self.codec_args,
            "-flush_packets",
            "1",
            "-f",
            self.fmt,
            str(self.tmp),
            "-map",
            "0:a:0",
            *audio_filters(1, restamp),
            *limit,
            *pcm_pipe_args(METER_RATE, 1),
        ]

    def _read_levels(self, stdout: object) -> None:
        import numpy as np

        from micmon.features import dbfs

        chunk = int(METER_RATE * METER_CHUNK_SECONDS) * 2
        total = 0
        while True:
            data = stdout.read(chunk)  # type: ignore[attr-defined]
            if not data:
                return
            total += len(data)
            self.seconds = total / (2 * METER_RATE)
            samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
            self.level = dbfs(samples)
            x = samples.astype(np.float64) / 32768
            self._energy += float(np.dot(x, x))
            self._count += len(x)

    @property
    def mean_dbfs(self) -> float:
        """RMS level of everything captured so far, in dBFS (-inf for silence)."""
        if not self._count or self._energy <= 0:
            return float("-inf")
        return 10 * math.log10(self._energy / self._count)

    def _read_stderr(self, stderr: object) -> None:
        for line in stderr:  # type: ignore[attr-defined]
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def stop(self) -> None:
        """Ask ffmpeg to finish the file ('q' on stdin, then SIGINT, then kill)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"q")
            proc.stdin.flush()
        except OSError:
            pass
        try:
            proc.wait(STOP_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run(self, on_tick: Callable[[Recording], None] | None = None) -> None:
        """Record until the duration ends, ffmpeg stops, Ctrl-C or SIGTERM; then move the file."""
        from micmon.audio.ffmpeg import probe_duration
        from micmon.errors import AudioError

        self.target.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log.debug("%s", " ".join(cmd))
        # A session of its own: Ctrl-C reaches only us, and we stop ffmpeg cleanly.
        self._proc = proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        readers = [
            threading.Thread(target=self._read_levels, args=(proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True),
        ]
        for thread in readers:
            thread.start()
        previous = _on_sigterm()
        try:
            while proc.poll() is None:
                if on_tick is not None:
                    on_tick(self)
                time.sleep(METER_CHUNK_SECONDS)
        except (KeyboardInterrupt, _Stop):
            log.info("stopping: finishing the file...")
        finally:
            self.stop()
            _restore_sigterm(previous)
            for thread in readers:
                thread.join(timeout=2)
        ok_codes = (0, 255, -signal.SIGINT)
        if proc.returncode not in ok_codes or not self.tmp.exists() or self.tmp.stat().st_size == 0:
            self.tmp.unlink(missing_ok=True)
            reason = self._stderr[-1] if self._stderr else f"ffmpeg exited with {proc.returncode}"
            raise AudioError(
                f"{self.system}:{self.device}: recording failed ({reason}); check "
                "--system and --device (e.g. `arecord -l` lists alsa devices)"
            )
        os.replace(self.tmp, self.target)
        try:
            self.seconds = probe_duration(self.target, ffmpeg_bin=self.ffmpeg_bin)
        except AudioError:
            pass


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_sigterm() -> list[object] | None:
    """Make SIGINT and SIGTERM stop the recording (also when a shell started us ignoring SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    return [signal.signal(sig, handler) for sig in _STOP_SIGNALS]


def _restore_sigterm(previous: list[object] | None) -> None:
    if previous is not None:
        for sig, old in zip(_STOP_SIGNALS, previous, strict=True):
            signal.signal(sig, old)  # type: ignore[arg-type]


def next_sample_name(audio_dir: Path) -> str:
    """Return `sample_N` with N one more than the highest existing `sample_<n>` folder."""
    taken = (
        [int(m.group(1)) for p in audio_dir.glob("sample_*") if (m := _SAMPLE_RE.match(p.name))]
        if audio_dir.is_dir()
        else []
    )
    return f"sample_{max(taken, default=0) + 1}"
