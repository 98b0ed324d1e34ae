"""AudioPlayer: plays AudioSegments through ffplay."""

from __future__ import annotations

import subprocess
from types import TracebackType

from micmon.audio.ffmpeg import find_executable
from micmon.audio.segment import AudioSegment
from micmon.errors import AudioError

_CLOSE_MARGIN = 5.0


class AudioPlayer:
    """Plays windows one after another through a single ffplay process."""

    def __init__(self, ffplay_bin: str = "ffplay") -> None:
        self.ffplay_bin = ffplay_bin
        self._proc: subprocess.Popen[bytes] | None = None
        self._format: tuple[int, int] | None = None
        self._queued_seconds = 0.0

    def __enter__(self) -> AudioPlayer:
        find_executable(self.ffplay_bin)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def play(self, sample: AudioSegment) -> None:
        """Queue `sample` for playback; blocks while the player's pipe is full."""
        fmt = (sample.sample_rate, sample.channels)
        if self._proc is not None and self._format != fmt:
            self.close()
        if self._proc is None:
            cmd = [
                find_executable(self.ffplay_bin),
                "-nodisp",
                "-autoexit",
                "-loglevel",
                "error",
                "-f",
                "s16le",
                "-ar",
                str(fmt[0]),
                "-ch_layout",
                "mono" if fmt[1] == 1 else "stereo" if fmt[1] == 2 else f"{fmt[1]}c",
                "-i",
                "pipe:0",
            ]
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self._format = fmt
            self._queued_seconds = 0.0
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(sample.raw)
            self._proc.stdin.flush()
        except BrokenPipeError:
            self._proc = None
            raise AudioError("ffplay stopped; is an audio output available?") from None
        self._queued_seconds += sample.duration

    def close(self) -> None:
        """Let queued audio finish playing, then stop ffplay."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            proc.wait(timeout=self._queued_seconds + _CLOSE_MARGIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
