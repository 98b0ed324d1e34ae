"""AudioSource: an ffmpeg process streaming raw PCM, cut into whole (optionally overlapping) windows."""

from __future__ import annotations

import collections
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

from micmon.audio.ffmpeg import find_ffmpeg, pcm_output_args
from micmon.audio.segment import AudioSegment
from micmon.errors import AudioError, ParameterError

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
#: Seconds of audio handed from the reader thread to the consumer in one piece.
CHUNK_SECONDS = 0.05
#: Seconds of decoded audio a file source buffers ahead of its consumer.
FILE_BUFFER_SECONDS = 8.0
#: Seconds of captured audio a live source keeps while its consumer is busy; older audio is dropped.
LIVE_BUFFER_SECONDS = 60.0
_STDERR_LINES = 20
_STOP_TIMEOUT = 3.0
_EOF = object()


class AudioSource:
    """Whole windows of audio from an ffmpeg input, as an iterator and a context manager.

    A reader thread drains ffmpeg continuously into a bounded buffer, so a live capture keeps
    recording while the consumer works (or is paused); a file source stops decoding when its
    buffer is full. The last partial window of a stream is always dropped.
    """

    def __init__(self, input_args: Sequence[str], *, sample_duration: float = 2.0,
                 sample_rate: int = 44100, channels: int = 1, hop: float | None = None,
                 ffmpeg_bin: str = "ffmpeg", live: bool = False, name: str = "audio",
                 start_offset: float = 0.0,
                 labeller: Callable[[float, float], str | None] | None = None) -> None:
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ParameterError(f"sample_rate: must be a positive integer (Hz), got {sample_rate!r}")
        if not isinstance(channels, int) or channels <= 0:
            raise ParameterError(f"channels: must be a positive integer, got {channels!r}")
        if not sample_duration or sample_duration <= 0:
            raise ParameterError(f"sample_duration: must be > 0 seconds, got {sample_duration!r}")
        if hop is not None and hop <= 0:
            raise ParameterError(f"hop: must be > 0 seconds, got {hop!r}")
        self.input_args = list(input_args)
        self.sample_duration = float(sample_duration)
        self.sample_rate = sample_rate
        self.channels = channels
        self.hop = float(hop) if hop is not None else self.sample_duration
        self.ffmpeg_bin = ffmpeg_bin
        self.live = live
        self.name = name
        self.start_offset = float(start_offset)
        self._labeller = labeller
        frame = BYTES_PER_SAMPLE * channels
        self._frame_bytes = frame
        self._window_frames = int(round(self.sample_duration * sample_rate))
        if self._window_frames < 1:
            raise ParameterError(f"sample_duration: {sample_duration} s is shorter than one sample")
        self._hop_frames = max(1, int(round(self.hop * sample_rate)))
        self._window_bytes = self._window_frames * frame
        self._hop_bytes = self._hop_frames * frame
        self._chunk_bytes = max(frame, int(CHUNK_SECONDS * sample_rate) * frame)
        buffer_seconds = LIVE_BUFFER_SECONDS if live else FILE_BUFFER_SECONDS
        self._max_chunks = max(4, int(buffer_seconds / CHUNK_SECONDS))
        self._proc: subprocess.Popen[bytes] | None = None
        self._queue: queue.Queue[object] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stderr_thread: threading.Thread | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._stop = threading.Event()
        self._space = threading.Semaphore(self._max_chunks)
        self._buffer = bytearray()
        self._skip = 0
        self._index = 0
        self._paused = False
        self.dropped_seconds = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def command(self) -> list[str]:
        """Return the ffmpeg command line this source runs."""
        return [find_ffmpeg(self.ffmpeg_bin), "-hide_banner", "-nostdin", "-loglevel", "error",
                *self.input_args, *pcm_output_args(self.sample_rate, self.channels)]

    def open(self) -> AudioSource:
        """Start ffmpeg (if not running) and return self."""
        if self._proc is not None:
            return self
        cmd = self.command()
        self._stop.clear()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise AudioError(f"{self.name}: cannot start ffmpeg ({exc.strerror})") from None
        self._reader = threading.Thread(target=self._read_stdout, name="micmon-audio-reader",
                                        daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr,
                                               name="micmon-audio-stderr", daemon=True)
        self._reader.start()
        self._stderr_thread.start()
        return self

    def close(self) -> None:
        """Stop ffmpeg and the reader thread; safe to call twice."""
        self._stop.set()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._space.release()  # wake a reader blocked on a full buffer
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in (self._reader, self._stderr_thread):
            if thread is not None:
                thread.join(timeout=_STOP_TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> AudioSource:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

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
        return self._proc is not None and self._proc.poll() is None

    @property
    def position(self) -> float:
        """Seconds from the source's start to the start of the next window."""
        return self.start_offset + self._index * self._hop_frames / self.sample_rate

    # -- threads ------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        pending = bytearray()
        try:
            while not self._stop.is_set():
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                pending += data
                while len(pending) >= self._chunk_bytes:
                    self._put(bytes(pending[: self._chunk_bytes]))
                    del pending[: self._chunk_bytes]
            if pending:
                self._put(bytes(pending))
        except (OSError, ValueError):
            pass
        finally:
            self._queue.put(_EOF)

    def _put(self, chunk: bytes) -> None:
        if self.live:
            if not self._space.acquire(blocking=False):
                # The consumer is too slow: drop the oldest audio so capture never stalls.
                try:
                    old = self._queue.get_nowait()
                    if isinstance(old, bytes):
                        self.dropped_seconds += len(old) / self._frame_bytes / self.sample_rate
                except queue.Empty:
                    pass
                else:
                    log.warning("%s: consumer too slow, dropped %.2f s of audio so far",
                                self.name, self.dropped_seconds)
        else:
            while not self._space.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
        self._queue.put(chunk)

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for line in proc.stderr:
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self._stderr.append(text)
        except (OSError, ValueError):
            pass

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[AudioSegment]:
        if self._proc is None and not self._stop.is_set():
            self.open()
        return self

    def __next__(self) -> AudioSegment:
        if self._proc is None:
            if self._stop.is_set():
                raise StopIteration
            self.open()
        while len(self._buffer) < self._skip + self._window_bytes:
            item = self._queue.get()
            if item is _EOF:
                self._queue.put(_EOF)  # stay at the end on further calls
                self._finish()
                raise StopIteration
            assert isinstance(item, bytes)
            self._space.release()
            self._buffer += item
        if self._skip:
            del self._buffer[: self._skip]
            self._skip = 0
        window = bytes(self._buffer[: self._window_bytes])
        start = self.position
        if self._hop_bytes <= len(self._buffer):
            del self._buffer[: self._hop_bytes]
        else:
            self._skip = self._hop_bytes - len(self._buffer)
            self._buffer.clear()
        self._index += 1
        label = self._labeller(start, start + self.sample_duration) if self._labeller else None
        return AudioSegment(window, self.sample_rate, self.channels, label=label, start=start)

    def _finish(self) -> None:
        """Wait for ffmpeg to exit; raise AudioError if it failed."""
        proc = self._proc
        if proc is None:
            return
        try:
            code = proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=_STOP_TIMEOUT)
        if code and not self._stop.is_set():
            self.close()
            raise AudioError(f"{self.name}: ffmpeg failed ({self.last_error or f'exit code {code}'})")

    @property
    def last_error(self) -> str | None:
        """The last line ffmpeg printed on stderr, if any."""
        return self._stderr[-1] if self._stderr else None

    def wait_for_audio(self, timeout: float) -> bool:
        """Return True once some audio has arrived, False after `timeout` seconds without any."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._buffer or not self._queue.empty():
                return True
            time.sleep(0.01)
        return False
