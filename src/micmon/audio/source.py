"""AudioSource: an ffmpeg process streaming raw PCM, cut into whole (optionally overlapping) windows."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from micmon.audio.ffmpeg import find_ffmpeg, pcm_output_args
from micmon.audio.segment import AudioSegment
from micmon.errors import AudioError, ParameterError
from micmon.features import check_hop

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
#: Seconds of live audio handed from the reader thread to the consumer in one piece.
CHUNK_SECONDS = 0.05
#: The same for files: larger pieces, fewer queue round trips (72,000 an hour at 0.05 s).
FILE_CHUNK_SECONDS = 1.0
#: Seconds of decoded audio a file source buffers ahead of its consumer. It exceeds the
#: 128 s that DatasetWriter and predict score in one batch, so ffmpeg keeps decoding (on
#: the other core) while a batch is computed; 14 MB at 44.1 kHz mono.
FILE_BUFFER_SECONDS = 160.0
#: Seconds of captured audio a live source keeps while its consumer is busy; older audio is dropped.
LIVE_BUFFER_SECONDS = 60.0
#: Seconds between two warnings about audio dropped by a slow consumer.
DROP_WARNING_INTERVAL = 10.0
#: Requested size of the pipe from ffmpeg (Linux caps it at /proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
_STDERR_LINES = 20
_STOP_TIMEOUT = 3.0
_EOF = object()


class _Pipe:
    """What the reader threads share with the consumer; it never refers to the AudioSource, so an
    abandoned source is garbage-collected (and its ffmpeg stopped) even while its threads run."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        name: str,
        live: bool,
        paced: bool = False,
        chunk_bytes: int,
        frame_bytes: int,
        sample_rate: int,
        max_chunks: int,
    ) -> None:
        self.proc = proc
        self.name = name
        self.live = live
        #: ffmpeg delivers in real time (a device, or a file with -re): wait for a chunk to fill.
        self.paced = paced
        self.chunk_bytes = chunk_bytes
        self.frame_bytes = frame_bytes
        self.sample_rate = sample_rate
        self.queue: queue.Queue[object] = queue.Queue()
        self.space = threading.Semaphore(max_chunks)
        self.stop = threading.Event()
        self.stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self.dropped_seconds = 0.0
        self._last_warning = -DROP_WARNING_INTERVAL

    def read_stdout(self) -> None:
        """Thread body: cut ffmpeg's stdout into (first frame, bytes) chunks and queue them."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = bytearray()
        frame = 0
        try:
            while not self.stop.is_set():
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                pending += data
                while len(pending) >= self.chunk_bytes and not self.stop.is_set():
                    self._put(frame, bytes(pending[: self.chunk_bytes]))
                    del pending[: self.chunk_bytes]
                    frame += self.chunk_bytes // self.frame_bytes
                if self.paced:
                    # Real-time audio comes in small writes (an mp3 frame, a device period: ~40
                    # a second), each a wake-up of this thread and a turn of the GIL, while only
                    # whole chunks are handed on: sleep until the chunk should be complete.
                    missing = (self.chunk_bytes - len(pending)) / (self.frame_bytes * self.sample_rate)
                    self.stop.wait(min(missing, self.chunk_bytes / (self.frame_bytes * self.sample_rate)))
            usable = len(pending) - len(pending) % self.frame_bytes
            if usable and not self.stop.is_set():
                self._put(frame, bytes(pending[:usable]))
        except (OSError, ValueError):
            pass
        finally:
            self.queue.put(_EOF)
            self.proc.stdout.close()  # closed here, not by _shutdown, so no read races a close

    def _put(self, frame: int, chunk: bytes) -> None:
        if self.live:
            if not self.space.acquire(blocking=False):
                # The consumer is too slow: drop the oldest audio so capture never stalls.
                try:
                    old = self.queue.get_nowait()
                except queue.Empty:
                    pass
                else:
                    if isinstance(old, tuple):
                        self.dropped_seconds += len(old[1]) / self.frame_bytes / self.sample_rate
                        self._warn_dropped()
        else:
            while not self.space.acquire(timeout=0.1):
                if self.stop.is_set():
                    return
        self.queue.put((frame, chunk))

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_warning >= DROP_WARNING_INTERVAL:
            self._last_warning = now
            log.warning(
                "%s: consumer too slow, dropped %.2f s of audio so far", self.name, self.dropped_seconds
            )

    def read_stderr(self) -> None:
        """Thread body: keep ffmpeg's last stderr lines."""
        assert self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self.stderr.append(text)
        except (OSError, ValueError):
            pass
        finally:
            self.proc.stderr.close()


def window_length(window_seconds: float, sample_duration: float | None) -> float:
    """Return the window length: `sample_duration` (the original README's keyword) when given."""
    return window_seconds if sample_duration is None else sample_duration


class AudioSource:
    """Whole windows of audio from an ffmpeg input, as an iterator and a context manager.

    A reader thread drains ffmpeg continuously into a bounded buffer, so a live capture keeps
    recording while the consumer works (or is paused); a file source stops decoding when its
    buffer is full. The last partial window of a stream is always dropped. Window start times
    count every sample ffmpeg delivered, including audio dropped by an overrun live buffer.
    """

    def __init__(
        self,
        input_args: Sequence[str],
        *,
        window_seconds: float = 2.0,
        sample_rate: int = 44100,
        channels: int = 1,
        hop: float | None = None,
        ffmpeg_bin: str = "ffmpeg",
        live: bool = False,
        name: str = "audio",
        start_offset: float = 0.0,
        labeller: Callable[[float, float], str | None] | None = None,
    ) -> None:
        self._pipe: _Pipe | None = None
        self._closed = False
        self._dropped_closed = 0.0  # dropped_seconds of pipes already closed
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ParameterError(
                f"sample_rate: must be a positive integer (Hz), got {sample_rate!r}",
                parameter="sample_rate",
                value=sample_rate,
            )
        if not isinstance(channels, int) or channels <= 0:
            raise ParameterError(
                f"channels: must be a positive integer, got {channels!r}",
                parameter="channels",
                value=channels,
            )
        if (
            isinstance(window_seconds, bool)
            or not isinstance(window_seconds, (int, float))
            or not window_seconds > 0
        ):
            raise ParameterError(
                f"window_seconds: must be > 0 seconds, got {window_seconds!r}",
                parameter="window_seconds",
                value=window_seconds,
            )
        self.input_args = list(input_args)
        self.window_seconds = float(window_seconds)
        self.sample_rate = sample_rate
        self.channels = channels
        self.hop = self.window_seconds if hop is None else check_hop(hop, self.window_seconds, gaps=True)
        self.ffmpeg_bin = ffmpeg_bin
        self.live = live
        self.name = name
        self.start_offset = float(start_offset)
        self._labeller = labeller
        self._frame_bytes = BYTES_PER_SAMPLE * channels
        self._window_frames = int(round(self.window_seconds * sample_rate))
        if self._window_frames < 1:
            raise ParameterError(
                f"window_seconds: {window_seconds} s is shorter than one sample",
                parameter="window_seconds",
                value=window_seconds,
            )
        self._hop_frames = max(1, int(round(self.hop * sample_rate)))
        self._window_bytes = self._window_frames * self._frame_bytes
        self._chunk_seconds = CHUNK_SECONDS if live else FILE_CHUNK_SECONDS
        self._chunk_bytes = max(1, int(self._chunk_seconds * sample_rate)) * self._frame_bytes
        self._buffer = bytearray()
        self._buffer_frame = 0  # stream frame of self._buffer[0]
        self._next_frame = 0  # stream frame where the next window starts
        self._paused = False

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def sample_duration(self) -> float:
        """The window length in seconds (the original micmon's name for `window_seconds`)."""
        return self.window_seconds

    def command(self) -> list[str]:
        """Return the ffmpeg command line this source runs."""
        return [
            find_ffmpeg(self.ffmpeg_bin),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            *self.input_args,
            *pcm_output_args(self.sample_rate, self.channels),
        ]

    def open(self) -> AudioSource:
        """Start ffmpeg (if not running) and return self."""
        if self._pipe is not None:
            return self
        cmd = self.command()
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            raise AudioError(f"{self.name}: cannot start ffmpeg ({exc.strerror})") from None
        _enlarge_pipe(proc)
        buffer_seconds = LIVE_BUFFER_SECONDS if self.live else FILE_BUFFER_SECONDS
        pipe = _Pipe(
            proc,
            name=self.name,
            live=self.live,
            paced=self.live or "-re" in self.input_args,
            chunk_bytes=self._chunk_bytes,
            frame_bytes=self._frame_bytes,
            sample_rate=self.sample_rate,
            max_chunks=max(4, int(buffer_seconds / self._chunk_seconds)),
        )
        self._pipe = pipe
        self._closed = False
        self._threads = [
            threading.Thread(target=pipe.read_stdout, name="micmon-audio-reader", daemon=True),
            threading.Thread(target=pipe.read_stderr, name="micmon-audio-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop ffmpeg and the reader threads; safe to call twice."""
        self._closed = True
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        _shutdown(pipe)
        self._dropped_closed += pipe.dropped_seconds
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=_STOP_TIMEOUT)

    def __enter__(self) -> AudioSource:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            _shutdown(pipe)

    # -- pause/resume -------------------------------------------------------------------------
    def pause(self) -> None:
        """Mark the source paused; a live capture keeps buffering, so no audio is lost."""
        self._paused = True

    def resume(self) -> None:
        """Resume handing out windows, starting right after the last one."""
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether pause() was called without resume()."""
        return self._paused

    @property
    def running(self) -> bool:
        """Whether the ffmpeg process is alive."""
        return self._pipe is not None and self._pipe.proc.poll() is None

    @property
    def position(self) -> float:
        """Seconds from the source's start to the start of the next window."""
        return self.start_offset + self._next_frame / self.sample_rate

    @property
    def dropped_seconds(self) -> float:
        """Seconds of live audio dropped because the consumer fell behind."""
        return self._dropped_closed + (self._pipe.dropped_seconds if self._pipe is not None else 0.0)

    @property
    def last_error(self) -> str | None:
        """The last line ffmpeg printed on stderr, if any."""
        if self._pipe is None or not self._pipe.stderr:
            return None
        return self._pipe.stderr[-1]

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[AudioSegment]:
        if self._pipe is None and not self._closed:
            self.open()
        return self

    def __next__(self) -> AudioSegment:
        if self._pipe is None:
            if self._closed:
                raise StopIteration
            self.open()
        pipe = self._pipe
        assert pipe is not None
        fb = self._frame_bytes
        while True:
            behind = self._next_frame - self._buffer_frame
            if behind > 0:  # hop longer than the window: skip audio between windows
                drop = min(behind, len(self._buffer) // fb)
                del self._buffer[: drop * fb]
                self._buffer_frame += drop
            if self._buffer_frame > self._next_frame:  # a gap: audio was dropped
                self._next_frame = self._buffer_frame
            if self._buffer_frame == self._next_frame and len(self._buffer) >= self._window_bytes:
                break
            item = pipe.queue.get()
            if item is _EOF:
                pipe.queue.put(_EOF)  # stay at the end on further calls
                self._finish(pipe)
                raise StopIteration
            assert isinstance(item, tuple)
            pipe.space.release()
            frame, chunk = item
            if frame != self._buffer_frame + len(self._buffer) // fb:
                self._buffer.clear()  # never stitch a window across dropped audio
                self._buffer_frame = frame
            self._buffer += chunk
        # One copy, straight into the window's int16 array (a bytes slice copied twice more).
        window = np.frombuffer(self._buffer, dtype="<i2", count=self._window_bytes // 2).astype(np.int16)
        start = self.position
        self._next_frame += self._hop_frames
        label = self._labeller(start, start + self.window_seconds) if self._labeller else None
        return AudioSegment(window, self.sample_rate, self.channels, label=label, start=start)

    def _finish(self, pipe: _Pipe) -> None:
        """Wait for ffmpeg to exit; raise AudioError if it failed."""
        try:
            code = pipe.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=_STOP_TIMEOUT)
        if code and not pipe.stop.is_set():
            error = self.last_error or f"exit code {code}"
            self.close()
            raise AudioError(f"{self.name}: ffmpeg failed ({error})")


def _enlarge_pipe(proc: subprocess.Popen[bytes]) -> None:
    """Let ffmpeg write up to PIPE_BYTES ahead: while numpy holds the GIL for a batch of FFTs the
    reader thread cannot drain the pipe, and a 64 KiB pipe would stall decoding within 1 ms."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None or proc.stdout is None:
        return
    try:
        fcntl.fcntl(proc.stdout.fileno(), set_size, PIPE_BYTES)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: keep the default


def _shutdown(pipe: _Pipe) -> None:
    """Stop a pipe's ffmpeg (terminate, then kill) and release its reader threads."""
    pipe.stop.set()
    proc = pipe.proc
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGCONT)  # a stopped (hung) ffmpeg must run to see SIGTERM
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
