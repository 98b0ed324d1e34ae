"""The listening loop: audio windows -> model scores -> Detector -> actions, and it stays up.

Two layers:

- `Listener`: no threads, no processes. Give it windows (`process_window`) or raw audio in chunks
  of any size (`feed`), get events back, each with the audio around it for clips. File replay,
  tests and embedding in another program use it directly.
- `Monitor`: runs a `Listener` on an ffmpeg `AudioSource` (a live device, or a file in real time
  or as fast as possible), hands events to `Actions`, reconnects with exponential backoff (capped
  at 30 s) whenever ffmpeg exits, and stops cleanly on `stop()` (or SIGINT/SIGTERM with
  `install_signal_handlers`), ending open events and flushing the actions.

The model is loaded with `Model.load`, which serves ``model.tflite`` through LiteRT: nothing here
imports TensorFlow. Every buffer is bounded, so memory stays flat however long it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import FrameType
from typing import Any

import numpy as np

from micmon.actions import Action, Actions, ClipAudio
from micmon.audio.device import DEVICE_HINT
from micmon.audio.source import AudioSource
from micmon.detect import SILENCE_DBFS, Detector, DetectorSettings, Event, model_hop, model_settings
from micmon.errors import AudioError, ParameterError
from micmon.features import WindowFeatures, dbfs, score_windows
from micmon.status import SILENCE_SECONDS, SILENT, LiveStatus

log = logging.getLogger(__name__)

#: First wait before reconnecting to a device after ffmpeg exits; doubled up to MAX_BACKOFF.
INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: A source that delivered audio for this long resets the backoff to INITIAL_BACKOFF.
STABLE_SECONDS = 10.0
#: A live source that delivers no window for this long (at least 3 windows) is restarted.
STALL_SECONDS = 10.0
#: Recent events kept for status displays.
RECENT_EVENTS = 10
#: Seconds given to the actions to flush when stopping.
FLUSH_TIMEOUT = 10.0
#: Input that stays below the silence floor (DetectorSettings.silence_dbfs) this long is reported
#: once as silent: a muted, unplugged or misconfigured microphone.
SILENCE_WARN_SECONDS = 30.0


@dataclass(frozen=True)
class WindowResult:
    """What the listener made of one window (for status displays and benchmarks)."""

    start: float
    end: float
    level_dbfs: float
    scores: dict[str, float]
    gated: bool
    events: tuple[Event, ...]


@dataclass
class MonitorStats:
    """Counters of a monitor run."""

    windows: int = 0
    gated: int = 0
    events: int = 0
    reconnects: int = 0
    audio_seconds: float = 0.0
    dropped_seconds: float = 0.0
    scoring_seconds: float = 0.0
    connected: bool = False
    last_error: str | None = None
    #: Windows below the silence floor (digital silence); never scored, never an event.
    silent_windows: int = 0
    #: Seconds the input has been below the silence floor without a break (0 when it is not).
    silent_seconds: float = 0.0
    #: True once the input has been silent for `Monitor.silence_warn_seconds` (and still is).
    silent: bool = False
    recent: deque[Event] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))


class _History:
    """The last `seconds` of a contiguous stream (int16, interleaved), for clips with pre-roll."""

    def __init__(self, seconds: float, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._frames = max(1, int(np.ceil(seconds * sample_rate)))
        self._buf = np.zeros(self._frames * channels, dtype=np.int16)
        self._written = 0  # frames ever written since the last clear
        self._start = 0.0  # stream time of frame 0

    def clear(self, start: float) -> None:
        """Forget everything; the next frame written is at stream time `start`."""
        self._written = 0
        self._start = start

    @property
    def end(self) -> float:
        """Stream time just after the last frame held."""
        return self._start + self._written / self.sample_rate

    def append(self, samples: np.ndarray) -> None:
        """Add interleaved frames right after the previous ones."""
        data = samples.reshape(-1)[-len(self._buf) :]
        n = len(data) // self.channels
        skipped = len(samples.reshape(-1)) // self.channels - n
        self._written += skipped
        pos = (self._written % self._frames) * self.channels
        first = min(len(data), len(self._buf) - pos)
        self._buf[pos : pos + first] = data[:first]
        self._buf[: len(data) - first] = data[first:]
        self._written += n

    def get(self, start: float, end: float) -> ClipAudio:
        """Return the audio between stream times `start` and `end`, clipped to what is held."""
        oldest = max(0, self._written - self._frames)
        a = max(oldest, int(round((start - self._start) * self.sample_rate)))
        b = min(self._written, int(round((end - self._start) * self.sample_rate)))
        if b <= a:
            return ClipAudio(np.zeros(0, dtype=np.int16), self.sample_rate, self.channels, start)
        # Two slices of the ring, not fancy indexing: no index arrays 4x the clip's size.
        ch, pos, n = self.channels, a % self._frames, b - a
        if pos + n <= self._frames:
            samples = self._buf[pos * ch : (pos + n) * ch].copy()
        else:
            samples = np.concatenate([self._buf[pos * ch :], self._buf[: (pos + n - self._frames) * ch]])
        return ClipAudio(samples, self.sample_rate, self.channels, self._start + a / self.sample_rate)


class Listener:
    """Score windows and detect events; keeps the recent audio for clips. No threads, no I/O.

    Parameters
    ----------
    model : Model (or any object with ``labels``, ``spec`` and ``predict_proba``)
        The trained model; its FeatureSpec fixes the window length, rate and channels.
    settings : DetectorSettings, optional
        Thresholds and timing rules (default: the model's calibrated ones, `detect.model_settings`).
    hop : float in (0, window], optional
        Seconds between window starts (default: the model's, `detect.model_hop`: the calibrated
        hop, else a quarter of the window).
    clip_seconds : float >= 0
        Seconds of past audio to keep for clips (pre-roll + longest clip); 0 keeps none.
    pre_roll, post_roll : float >= 0
        Seconds of audio before an event's start and after its end that go into its clip.
    origin : datetime, optional
        Wall-clock time of stream time 0 (default: now).
    """

    def __init__(
        self,
        model: Any,
        settings: DetectorSettings | None = None,
        *,
        hop: float | None = None,
        clip_seconds: float = 0.0,
        pre_roll: float = 0.0,
        post_roll: float = 0.0,
        origin: datetime | None = None,
    ) -> None:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ParameterError("model: has no feature spec; load a trained model folder", parameter="model")
        self.model = model
        self.spec = spec
        self.window = float(spec.window_seconds)
        metadata = getattr(model, "metadata", None)
        self.hop = model_hop(metadata, self.window, hop)
        if settings is None:
            settings = model_settings(metadata, list(model.labels))
        self.window_frames = spec.window_samples
        self.hop_frames = max(1, int(round(self.hop * spec.sample_rate)))
        self.sample_rate = int(spec.sample_rate)
        self.channels = int(spec.channels)
        self.detector = Detector(
            list(model.labels), settings, window_seconds=self.window, hop_seconds=self.hop, origin=origin
        )
        # Overlapping windows share their frames; None computes each window from scratch.
        self._features: WindowFeatures | None = WindowFeatures(spec)
        self.clip_seconds = float(clip_seconds)
        self.pre_roll = float(pre_roll)
        self.post_roll = float(post_roll)
        self._history = (
            _History(self.clip_seconds + self.window, self.sample_rate, self.channels)
            if self.clip_seconds > 0
            else None
        )
        self._last_window_end: float | None = None
        # feed(): carried samples and the stream time of the first one
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_start = 0.0
        self._feed_time = 0.0

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels."""
        return self.detector.labels

    @property
    def origin(self) -> datetime:
        """Wall-clock time of stream time 0."""
        return self.detector.origin

    def reset(self, *, origin: datetime | None = None) -> None:
        """Forget all state (history, open events, carried audio)."""
        self.detector.reset(origin=origin)
        if self._features is not None:
            self._features.reset()
        self._last_window_end = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_start = self._feed_time = 0.0
        if self._history is not None:
            self._history.clear(0.0)

    # -- windows ------------------------------------------------------------------------------
    def process_window(
        self, audio: np.ndarray, start: float
    ) -> tuple[WindowResult, list[tuple[Event, ClipAudio | None]]]:
        """Score one window (int16, interleaved) starting at stream time `start`.

        Returns the window's result and its events, each end event paired with its clip audio
        (None without clip history). Windows must come in time order; a gap (a reconnect) is
        fine, the clip history restarts after it.
        """
        audio = np.asarray(audio, dtype=np.int16).reshape(-1)
        expected = self.window_frames * self.channels
        if audio.size != expected:
            raise ParameterError(
                f"window: got {audio.size} samples, the model wants {expected} "
                f"({self.window:g} s at {self.sample_rate} Hz x {self.channels})",
                parameter="window",
                value=audio.size,
            )
        end = start + self.window
        self._remember(audio, start, end)
        level = dbfs(audio)
        gated = self.detector.gated(level)
        if gated:
            row = None
        else:
            row = score_windows(self.model, audio.reshape(1, -1), [start], self._features)[0]
        events = self.detector.update(row, time=start, level_dbfs=level)
        scores = dict(self.detector.last_scores)
        result = WindowResult(
            start=start, end=end, level_dbfs=level, scores=scores, gated=gated, events=tuple(events)
        )
        return result, [(e, self.clip_for(e)) for e in events]

    def _remember(self, audio: np.ndarray, start: float, end: float) -> None:
        if self._history is None:
            self._last_window_end = end
            return
        last = self._last_window_end
        if last is None or start > last + 1e-6 or end <= last:
            # first window, or a gap: the history restarts with this whole window
            self._history.clear(start)
            self._history.append(audio)
        else:
            new_frames = int(round((end - last) * self.sample_rate))
            if new_frames > 0:
                self._history.append(audio[-new_frames * self.channels :])
        self._last_window_end = end

    def clip_for(self, event: Event) -> ClipAudio | None:
        """Return an end event's audio with pre- and post-roll, as far as held (None: no history)."""
        if self._history is None or event.kind != "end" or event.end is None:
            return None
        return self._history.get(event.start - self.pre_roll, event.end + self.post_roll)

    # -- raw audio ----------------------------------------------------------------------------
    def feed(self, chunk: np.ndarray) -> list[tuple[Event, ClipAudio | None]]:
        """Add int16 interleaved audio of any length; score every whole window it completes.

        The stream time of the first sample fed after construction or `reset()` is 0. The events
        do not depend on how the audio is chunked.
        """
        chunk = np.asarray(chunk, dtype=np.int16).reshape(-1)
        if chunk.size % self.channels:
            raise ParameterError(
                f"chunk: {chunk.size} samples do not split into {self.channels} channels", parameter="chunk"
            )
        self._pending = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        out: list[tuple[Event, ClipAudio | None]] = []
        win = self.window_frames * self.channels
        hop = self.hop_frames * self.channels
        offset = 0
        while self._pending.size - offset >= win:
            start = self._pending_start + offset // self.channels / self.sample_rate
            _, events = self.process_window(self._pending[offset : offset + win], start)
            out.extend(events)
            offset += hop
        if offset:
            self._pending = self._pending[offset:].copy()
            self._pending_start += offset // self.channels / self.sample_rate
        return out

    def finish(self) -> list[tuple[Event, ClipAudio | None]]:
        """End open events (call when the stream ends or the device goes away)."""
        return [(e, self.clip_for(e)) for e in self.detector.finish()]


# -- the monitor ---------------------------------------------------------------------------------
SourceFactory = Callable[[float], AudioSource]


def device_source(
    system: str, device: str | None, *, spec: Any, hop: float, ffmpeg_bin: str = "ffmpeg"
) -> SourceFactory:
    """Return a factory of live `AudioDevice` sources shaped for the model."""
    from micmon.audio import AudioDevice

    def make(offset: float) -> AudioSource:
        return AudioDevice(
            system,
            device,
            window_seconds=spec.window_seconds,
            sample_rate=spec.sample_rate,
            channels=spec.channels,
            hop=hop,
            ffmpeg_bin=ffmpeg_bin,
        )

    make(0.0)  # validate the parameters now, not at the first connection
    return make


def file_source(
    path: str | os.PathLike[str], *, spec: Any, hop: float, realtime: bool = True, ffmpeg_bin: str = "ffmpeg"
) -> SourceFactory:
    """Return a factory of `AudioFile` sources replaying `path` (in real time by default).

    Replayed faster than real time, the file's own clock is used for event times: stream time 0
    is the file's last modification minus its duration (when a recording was made), not now, so
    no event is reported in the future.
    """
    from micmon.audio import AudioFile, probe_duration

    def make(offset: float) -> AudioSource:
        return AudioFile(
            path,
            window_seconds=spec.window_seconds,
            sample_rate=spec.sample_rate,
            channels=spec.channels,
            hop=hop,
            realtime=realtime,
            ffmpeg_bin=ffmpeg_bin,
        )

    make(0.0)
    if not realtime:
        seconds = probe_duration(path, ffmpeg_bin=ffmpeg_bin)
        ended = os.path.getmtime(path)
        start = ended - (seconds if seconds == seconds else 0.0)
        make.origin = datetime.fromtimestamp(start, timezone.utc).astimezone()  # type: ignore[attr-defined]
    return make


class Monitor:
    """Listen to a source until stopped: score, detect, act, and survive the device going away.

    Parameters
    ----------
    model : Model
        A loaded model (``Model.load(dir)``: LiteRT, no TensorFlow).
    source : callable
        ``source(offset) -> AudioSource``; see `device_source` and `file_source`.
    settings : DetectorSettings, optional
        Detector rules (default: the model's calibrated ones).
    actions : Actions or sequence of Action, optional
        What to do on events (an `Actions` built from a sequence is closed by the monitor).
    hop : float, optional
        Seconds between window starts (default: the model's calibrated hop, else a quarter of
        the window).
    live : bool
        True for a device: reconnect with backoff when ffmpeg exits after audio came through once
        (a device that never delivered audio is an AudioError with a hint). False for a file:
        stop at its end (and raise AudioError if ffmpeg fails).
    on_window, on_event : callable, optional
        Called on the listening thread with each `WindowResult` / `Event` (keep them quick).
    silence_seconds : float > 0
        Input below the detector's silence floor (``silence_dbfs``) this long is digital silence:
        logged once as a warning, shown in ``stats.silent`` and in `status`, where it makes the
        audio count as not flowing (MQTT availability goes offline, /healthz answers 503).

    ``status`` (a `LiveStatus`) holds the audio health, the last minute of levels and scores and
    the events by label; each action's ``audio_status`` hears of every window and health change.
    """

    def __init__(
        self,
        model: Any,
        source: SourceFactory,
        *,
        settings: DetectorSettings | None = None,
        actions: Actions | Sequence[Action] | None = None,
        hop: float | None = None,
        live: bool = True,
        on_window: Callable[[WindowResult], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        flush_timeout: float = FLUSH_TIMEOUT,
        stall_seconds: float = STALL_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
    ) -> None:
        if isinstance(actions, Actions):
            self.actions = actions
        else:
            self.actions = Actions(list(actions or []))
        clip = self.actions.clip
        self.listener = Listener(
            model,
            settings,
            hop=hop,
            clip_seconds=self.actions.history_seconds,
            pre_roll=clip.pre_roll if clip else 0.0,
            post_roll=clip.post_roll if clip else 0.0,
        )
        self.source_factory = source
        self.live = live
        self.on_window = on_window
        self.on_event = on_event
        if not 0 < initial_backoff <= max_backoff:
            raise ParameterError(
                f"initial_backoff: must be > 0 and <= max_backoff "
                f"({max_backoff:g} s), got {initial_backoff!r}",
                parameter="initial_backoff",
                value=initial_backoff,
            )
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.flush_timeout = flush_timeout
        self._source_name = "the audio input"
        self._heard = False  # some audio came through since run() started
        # A hung capture (ffmpeg alive, no audio) counts as a lost device.
        self.stall_seconds = max(float(stall_seconds), 3 * self.listener.window)
        self._last_window_at = 0.0
        self.stats = MonitorStats()
        self._stop = threading.Event()
        self._source: AudioSource | None = None
        self._lock = threading.Lock()
        self._t0 = 0.0
        self.event_delays: deque[float] = deque(maxlen=10_000)
        if not silence_seconds > 0:
            raise ParameterError(f"silence_seconds: must be > 0, got {silence_seconds!r}")
        floor = self.listener.detector.settings.silence_dbfs
        self.status = LiveStatus(
            self.listener.detector.targets,
            silence_seconds=silence_seconds,
            silence_dbfs=SILENCE_DBFS if floor is None else floor,
        )
        self.status.add_listener(self._audio_status)

    def _audio_status(self, healthy: bool, level_dbfs: float | None) -> None:
        for action in self.actions.actions:
            action.audio_status(healthy, level_dbfs)

    @property
    def dropped_seconds(self) -> float:
        """Seconds of audio dropped so far, the current capture included."""
        with self._lock:
            source = self._source
        return self.stats.dropped_seconds + (source.dropped_seconds if source is not None else 0.0)

    @property
    def hop(self) -> float:
        """Seconds between window starts."""
        return self.listener.hop

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to end (thread- and signal-safe); run() then closes events and flushes."""
        self._stop.set()
        with self._lock:
            source = self._source
        if source is not None:
            # Closing ffmpeg wakes the loop if it waits for audio.
            threading.Thread(target=source.close, name="micmon-stop", daemon=True).start()

    def run(self) -> MonitorStats:
        """Listen until stop() (or, for a file, its end); return the run's counters."""
        self._t0 = time.monotonic()
        # A file replayed fast brings its own clock (see file_source); live audio happens now.
        origin = getattr(self.source_factory, "origin", None) or datetime.now(timezone.utc).astimezone()
        self.listener.reset(origin=origin)
        backoff = self.initial_backoff
        offset = 0.0
        self._heard = False
        try:
            while not self._stop.is_set():
                connected_at = time.monotonic()
                try:
                    got_audio = self._listen(offset)
                except AudioError as exc:
                    if not self.live:
                        raise
                    if not self._heard and not self._stop.is_set():
                        # Never opened: a wrong device name, not a device that went away.
                        raise AudioError(f"{exc}; {DEVICE_HINT}") from None
                    self.stats.last_error = str(exc)
                    log.warning("%s", exc)
                    got_audio = False
                finally:
                    self._close_source()
                    self.stats.connected = False
                    self.status.capture(False)
                if not self.live or self._stop.is_set():
                    break
                if not self._heard:
                    raise AudioError(
                        f"{self._source_name}: delivered no audio before it stopped; {DEVICE_HINT}"
                    )
                # The device went away: end what was going on, then reconnect.
                self._dispatch(self.listener.finish())
                if got_audio and time.monotonic() - connected_at >= STABLE_SECONDS:
                    backoff = self.initial_backoff
                log.warning("audio input stopped; reconnecting in %.0f s", backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff)
                self.stats.reconnects += 1
                # Stream time follows the wall clock across the gap.
                offset = time.monotonic() - self._t0
        finally:
            self._dispatch(self.listener.finish())
            if not self.actions.close(self.flush_timeout):
                log.warning("some actions did not finish within %.0f s", self.flush_timeout)
        return self.stats

    def _listen(self, offset: float) -> bool:
        source = self.source_factory(offset)
        self._source_name = source.name
        with self._lock:
            if self._stop.is_set():
                return False
            self._source = source
        source.open()
        got_audio = False
        self._last_window_at = time.monotonic()
        watching = threading.Event()
        if self.live:
            threading.Thread(
                target=self._watchdog, args=(source, watching), daemon=True, name="micmon-watchdog"
            ).start()
        try:
            got_audio = self._consume(source, offset)
        finally:
            watching.set()
        return got_audio

    def _watchdog(self, source: AudioSource, done: threading.Event) -> None:
        while not done.wait(1.0):
            silent = time.monotonic() - self._last_window_at
            if silent > self.stall_seconds:
                log.warning("%s: no audio for %.0f s; restarting the capture", source.name, silent)
                source.close()
                return

    def _consume(self, source: AudioSource, offset: float) -> bool:
        got_audio = False
        for segment in source:
            self._last_window_at = time.monotonic()
            if self._stop.is_set():
                break
            if not got_audio:
                got_audio = self._heard = True
                self.stats.connected = True
                if self.stats.reconnects:
                    log.warning("audio input is back (%s)", source.name)
                else:
                    log.info("listening to %s", source.name)
            self._handle(segment.audio, offset + segment.start - source.start_offset)
        return got_audio

    def _handle(self, audio: np.ndarray, start: float) -> None:
        began = time.process_time()
        result, events = self.listener.process_window(audio, start)
        self.stats.scoring_seconds += time.process_time() - began
        self.stats.windows += 1
        self.stats.gated += int(result.gated)
        self.stats.audio_seconds = result.end
        self.status.window(result)
        self._track_silence(result)
        if self.on_window is not None:
            self.on_window(result)
        if events:
            now = time.monotonic() - self._t0
            self.event_delays.extend(now - result.end for _ in events)
            self._dispatch(events)

    def _track_silence(self, result: WindowResult) -> None:
        """Count silent windows, and say once when the input turns digital silence (and back)."""
        stats = self.stats
        stats.silent_windows += int(result.level_dbfs < self.status.silence_dbfs)
        stats.silent_seconds = self.status.silent_seconds
        silent = self.status.health == SILENT
        if silent and not stats.silent:
            log.warning(
                "the input has been digital silence for %.0f s (below %g dBFS): is the "
                "microphone muted, unplugged or the wrong device? No event can start "
                "while it is silent",
                stats.silent_seconds,
                self.status.silence_dbfs,
            )
        elif stats.silent and not silent:
            log.warning("the input is no longer silent")
        stats.silent = silent

    def _dispatch(self, events: list[tuple[Event, ClipAudio | None]]) -> None:
        for event, audio in events:
            self.stats.events += 1
            self.stats.recent.append(event)
            self.status.event(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:  # a display problem must not stop listening
                    log.exception("on_event callback failed")
            self.actions.submit(event, audio if self.actions.wants_audio(event) else None)

    def _close_source(self) -> None:
        with self._lock:
            source = self._source
        if source is not None:
            source.close()
            with self._lock:  # counted once: dropped_seconds reads both under this lock
                self._source = None
                self.stats.dropped_seconds += source.dropped_seconds


def install_signal_handlers(monitor: Monitor) -> Callable[[], None]:
    """Make SIGINT and SIGTERM stop `monitor` cleanly; return a function restoring the old ones."""
    old: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        monitor.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore
