"""Turn per-window class scores into start/end events: the decision half of `micmon monitor`.

Pure logic, no I/O and no clock: the caller says when each window starts (seconds since the start
of the stream), so a live microphone, a file replayed in real time and a file scored as fast as
possible all give the same events for the same scores. `evaluate` and `predict` use it too.

Rules, per target label (each one independent of the others):

- A window is *above* when its score for the label is >= the label's threshold and the window is
  not gated by loudness (``min_dbfs``: quieter windows count as background without being scored).
  Digital silence and near-silence (RMS below ``silence_dbfs``, `SILENCE_DBFS` = -90 dBFS by
  default) are always background: a muted or unplugged microphone never starts an event, whatever
  the model makes of an all-zero window. Set ``silence_dbfs=None`` to score silence too.
- An event *triggers* when at least ``k`` of the last ``n`` windows are above, and at least
  ``cooldown_seconds`` have passed since the previous event of that label ended.
- It *ends* after ``m`` consecutive windows below ``hold`` x the threshold (hysteresis: with
  ``hold < 1`` a score that dips but stays above the lower level keeps the event going).
- Events shorter than ``min_event_seconds`` are dropped: the ``start`` event is only emitted once
  the event has lasted that long (so with a minimum length the start is reported later).

Each window stands for the central ``hop`` seconds of its span (``[start + (window - hop) / 2,
start + (window + hop) / 2]``), so overlapping windows tile the stream without double counting; an
event starts where its first above window's slice starts and ends where its last above window's
slice ends. With ``hop == window`` that is simply the windows themselves.

Example::

    detector = Detector(["negative", "positive"], DetectorSettings(threshold=0.7),
                        window_seconds=2.0, hop_seconds=0.5)
    for i, scores in enumerate(model.predict_proba(windows)):
        for event in detector.update(scores, time=i * 0.5):
            print(event.to_json())
    for event in detector.finish():
        print(event.to_json())
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np

from micmon.errors import ModelError, ParameterError
from micmon.features import check_hop

EventKind = Literal["start", "end"]

#: Score a label must reach when no threshold is given for it.
DEFAULT_THRESHOLD = 0.5
#: Default hop as a share of the window: each stretch of audio is scored in four windows.
DEFAULT_HOP_FRACTION = 0.25
#: Labels meaning "nothing happening", not watched unless targets or thresholds name them.
BACKGROUND_LABELS: tuple[str, ...] = ("negative", "background", "silence", "none", "other")
#: Windows quieter than this (RMS dBFS) are digital silence or near-silence: background, never scored.
#: 16-bit audio's own quantisation noise sits near -101 dBFS; any real room is far above -90.
SILENCE_DBFS = -90.0


@dataclass(frozen=True)
class DetectorSettings:
    """How scores become events; every field has a working default.

    Parameters
    ----------
    threshold : float in (0, 1]
        Score a target label must reach, unless ``thresholds`` names the label.
    thresholds : mapping label -> float in (0, 1]
        Per-label thresholds. When ``targets`` is empty, its keys are the labels watched.
    targets : sequence of labels
        Labels to watch. Empty: the keys of ``thresholds`` if any, else every model label not
        in `BACKGROUND_LABELS`.
    k, n : int, 1 <= k <= n
        An event starts when ``k`` of the last ``n`` windows are above the threshold.
    m : int >= 1
        An event ends after ``m`` consecutive windows below the threshold.
    min_event_seconds : float >= 0
        Shorter events are dropped; their start is held back until they last this long.
    cooldown_seconds : float >= 0
        Time from the end of one event to the earliest start of the next of the same label.
    min_dbfs : float or None
        Windows quieter than this (RMS dBFS, <= 0) count as background without being scored.
    hold : float in (0, 1]
        Hysteresis: an open event goes on while its score stays at or above ``hold`` times the
        label's threshold (1: the threshold itself), so one long sound whose score dips is one
        event rather than start, end, start.
    silence_dbfs : float or None
        The silence floor (RMS dBFS, <= 0; default `SILENCE_DBFS`): quieter windows are digital
        silence, always background. None scores them like any other window.
    """

    threshold: float = DEFAULT_THRESHOLD
    thresholds: Mapping[str, float] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    k: int = 1
    n: int = 1
    m: int = 1
    min_event_seconds: float = 0.0
    cooldown_seconds: float = 0.0
    min_dbfs: float | None = None
    hold: float = 1.0
    silence_dbfs: float | None = SILENCE_DBFS

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", dict(self.thresholds))
        object.__setattr__(self, "targets", tuple(self.targets))
        self.validate()

    def validate(self) -> None:
        """Raise ParameterError naming the first setting whose value cannot work."""
        _check_threshold("threshold", self.threshold)
        for label, value in self.thresholds.items():
            _check_threshold(f"thresholds.{label}", value)
        for name in ("k", "n", "m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(
                    f"{name}: must be an integer >= 1, got {value!r}", parameter=name, value=value
                )
        if self.k > self.n:
            raise ParameterError(
                f"k: {self.k} windows above the threshold can never happen in the "
                f"last n={self.n} windows; use k <= n",
                parameter="k",
            )
        for name in ("min_event_seconds", "cooldown_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ParameterError(
                    f"{name}: must be a number of seconds >= 0, got {value!r}", parameter=name, value=value
                )
        if (
            isinstance(self.hold, bool)
            or not isinstance(self.hold, (int, float))
            or not 0.0 < self.hold <= 1.0
        ):
            raise ParameterError(
                f"hold: must be a share of the threshold in (0, 1], e.g. 0.5, got {self.hold!r}",
                parameter="hold",
                value=self.hold,
            )
        for name in ("min_dbfs", "silence_dbfs"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value <= 0
            ):
                raise ParameterError(
                    f"{name}: must be a level in dBFS <= 0 (e.g. -50) or None, got {value!r}",
                    parameter=name,
                    value=value,
                )

    def with_(self, **changes: Any) -> DetectorSettings:
        """Return a copy with some settings changed (validated)."""
        return replace(self, **changes)

    def threshold_for(self, label: str) -> float:
        """Return the score `label` must reach: its own threshold, else the common one."""
        return float(self.thresholds.get(label, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (as stored under "detector" in micmon.json)."""
        data = asdict(self)
        data["thresholds"] = dict(self.thresholds)
        data["targets"] = list(self.targets)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorSettings:
        """Build settings from `to_dict()` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _check_threshold(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not 0.0 < float(value) <= 1.0
    ):
        raise ParameterError(
            f"{name}: must be a score in (0, 1], e.g. 0.7, got {value!r}", parameter=name, value=value
        )


@dataclass(frozen=True)
class Event:
    """A detected sound starting (``kind="start"``) or ending (``kind="end"``).

    Times are seconds since the detector's origin; `start_time`/`end_time` give them as wall-clock
    ISO 8601. A start event has ``end`` None; ``confidence`` is the score of the window that
    emitted the event, ``peak``/``mean`` cover the event's above-threshold windows so far.
    """

    kind: EventKind
    label: str
    start: float
    end: float | None
    confidence: float
    peak: float
    mean: float
    windows: int
    origin: datetime
    clip: str | None = None

    @property
    def time(self) -> float:
        """Seconds of the moment this event reports: its start, or its end for an end event."""
        return self.start if self.kind == "start" or self.end is None else self.end

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None for a start event)."""
        return None if self.end is None else self.end - self.start

    @property
    def start_time(self) -> str:
        """Wall-clock start, ISO 8601 with time zone."""
        return _iso(self.origin, self.start)

    @property
    def end_time(self) -> str | None:
        """Wall-clock end, ISO 8601 with time zone (None for a start event)."""
        return None if self.end is None else _iso(self.origin, self.end)

    def with_clip(self, path: str | None) -> Event:
        """Return a copy carrying the path of the audio clip saved for it."""
        return replace(self, clip=path)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as the JSON-ready dict printed, posted and published by actions."""
        return {
            "event": self.kind,
            "label": self.label,
            "time": _iso(self.origin, self.time),
            "confidence": round(self.confidence, 4),
            "peak": round(self.peak, 4),
            "mean": round(self.mean, 4),
            "start": self.start_time,
            "end": self.end_time,
            "start_seconds": round(self.start, 3),
            "end_seconds": None if self.end is None else round(self.end, 3),
            "duration": None if self.end is None else round(self.end - self.start, 3),
            "windows": self.windows,
            "clip": self.clip,
        }

    def to_json(self) -> str:
        """Return `to_dict()` as one JSON line."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _iso(origin: datetime, seconds: float) -> str:
    return (origin + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


@dataclass
class _LabelState:
    """Per-label detector state; every buffer is bounded by n."""

    index: int
    threshold: float
    # (above, slice start, slice end, score) of the last n windows
    history: deque[tuple[bool, float, float, float]]
    active: bool = False  # triggered (the start may still be held back by min_event_seconds)
    started: bool = False  # start event emitted
    start: float = 0.0
    last_above_end: float = 0.0
    peak: float = 0.0
    total: float = 0.0
    count: int = 0
    below: int = 0
    last_end: float = -math.inf


class Detector:
    """Stateful per-window event detector; feed windows in order with `update`, then `finish`.

    Parameters
    ----------
    labels : sequence of str
        The model's labels, in the order of the score columns.
    settings : DetectorSettings, optional
        Thresholds and timing rules (defaults: threshold 0.5, k = n = m = 1).
    window_seconds : float > 0
        Length of each scored window.
    hop_seconds : float in (0, window_seconds], optional
        Time between window starts (default: ``window_seconds``).
    origin : datetime, optional
        Wall-clock time of stream time 0, for the ISO times of events (default: now, local zone).
    """

    def __init__(
        self,
        labels: Sequence[str],
        settings: DetectorSettings | None = None,
        *,
        window_seconds: float,
        hop_seconds: float | None = None,
        origin: datetime | None = None,
    ) -> None:
        self.labels = tuple(labels)
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ParameterError(
                f"labels: need distinct label names, got {list(labels)!r}",
                parameter="labels",
                value=list(labels),
            )
        self.settings = settings or DetectorSettings()
        if not window_seconds > 0:
            raise ParameterError(
                f"window_seconds: must be > 0, got {window_seconds!r}",
                parameter="window_seconds",
                value=window_seconds,
            )
        hop = (
            window_seconds
            if hop_seconds is None
            else check_hop(hop_seconds, window_seconds, name="hop_seconds")
        )
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop)
        self.targets = self._resolve_targets()
        self.thresholds = {label: self.settings.threshold_for(label) for label in self.targets}
        self.origin: datetime = origin or datetime.now(timezone.utc).astimezone()
        self.reset(origin=origin)

    def _resolve_targets(self) -> tuple[str, ...]:
        s = self.settings
        named = s.targets or tuple(s.thresholds)
        unknown = [label for label in (*named, *s.thresholds) if label not in self.labels]
        if unknown:
            raise ParameterError(
                f"thresholds/targets: unknown label {unknown[0]!r}; the model's "
                f"labels are {', '.join(self.labels)}",
                parameter="thresholds/targets",
            )
        if named:
            return tuple(dict.fromkeys(named))
        targets = tuple(label for label in self.labels if label.lower() not in BACKGROUND_LABELS)
        if not targets:
            raise ParameterError(
                f"targets: every label ({', '.join(self.labels)}) is a background "
                "label; name the labels to watch in targets or thresholds",
                parameter="targets",
            )
        return targets

    # -- state --------------------------------------------------------------------------------
    def reset(self, *, origin: datetime | None = None) -> None:
        """Forget all history and open events; `origin` is the wall-clock time of stream time 0."""
        self.origin = origin or datetime.now(timezone.utc).astimezone()
        self._states = {
            label: _LabelState(
                index=self.labels.index(label),
                threshold=self.thresholds[label],
                history=deque(maxlen=self.settings.n),
            )
            for label in self.targets
        }
        self._last_time: float | None = None
        self.last_scores: dict[str, float] = {}

    @property
    def active(self) -> dict[str, Event]:
        """The events started and not yet ended, by label (as their start event, stats so far)."""
        return {
            label: self._event(st, "start", st.start, None, st.peak)
            for label, st in self._states.items()
            if st.started
        }

    def gated(self, level_dbfs: float | None) -> bool:
        """Return True when a window at this level is too quiet to score (silence or the loudness gate)."""
        if level_dbfs is None:
            return False
        return self.silent(level_dbfs) or (
            self.settings.min_dbfs is not None and level_dbfs < self.settings.min_dbfs
        )

    def silent(self, level_dbfs: float | None) -> bool:
        """Return True when a window at this level is below the silence floor (``silence_dbfs``)."""
        floor = self.settings.silence_dbfs
        return floor is not None and level_dbfs is not None and level_dbfs < floor

    # -- feeding ------------------------------------------------------------------------------
    def update(
        self, scores: Sequence[float] | np.ndarray | None, *, time: float, level_dbfs: float | None = None
    ) -> list[Event]:
        """Feed one window (scores per label, or None when gated) starting at `time`; return events.

        Windows must come in time order. Pass ``scores=None`` only for a window the loudness gate
        rejects (see `gated`); it counts as below every threshold.
        """
        if self._last_time is not None and time < self._last_time:
            raise ParameterError(
                f"time: windows must come in order; got {time:g} s after "
                f"{self._last_time:g} s (call reset() to start a new stream)",
                parameter="time",
                value=time,
            )
        self._last_time = time
        quiet = self.gated(level_dbfs)
        if scores is None:
            if not quiet:
                raise ParameterError(
                    "scores: None is only allowed for a window below min_dbfs or silence_dbfs",
                    parameter="scores",
                )
            row = None
        else:
            row = np.asarray(scores, dtype=np.float64).reshape(-1)
            if row.shape[0] != len(self.labels):
                raise ParameterError(
                    f"scores: got {row.shape[0]} values per window, the model has "
                    f"{len(self.labels)} labels ({', '.join(self.labels)})",
                    parameter="scores",
                    value=row.shape[0],
                )
        lo = time + (self.window_seconds - self.hop_seconds) / 2
        hi = lo + self.hop_seconds
        events: list[Event] = []
        for label, st in self._states.items():
            score = 0.0 if row is None or quiet else float(row[st.index])
            self.last_scores[label] = score
            above = not quiet and score >= st.threshold
            st.history.append((above, lo, hi, score))
            if st.active:
                holding = not quiet and score >= st.threshold * self.settings.hold
                self._continue(label, st, holding, score, hi, events)
            elif above:
                self._maybe_trigger(label, st, score, events)
        return events

    def _maybe_trigger(self, label: str, st: _LabelState, score: float, events: list[Event]) -> None:
        hits = [h for h in st.history if h[0]]
        if len(hits) < self.settings.k:
            return
        start = hits[0][1]
        if start < st.last_end + self.settings.cooldown_seconds:
            return
        st.active, st.started, st.start, st.below = True, False, start, 0
        st.last_above_end = hits[-1][2]
        st.peak = max(h[3] for h in hits)
        st.total = sum(h[3] for h in hits)
        st.count = len(hits)
        self._maybe_emit_start(label, st, score, events)

    def _continue(
        self, label: str, st: _LabelState, above: bool, score: float, hi: float, events: list[Event]
    ) -> None:
        if above:
            st.below = 0
            st.last_above_end = hi
            st.peak = max(st.peak, score)
            st.total += score
            st.count += 1
            if not st.started:
                self._maybe_emit_start(label, st, score, events)
            return
        st.below += 1
        if st.below >= self.settings.m:
            self._close(st, score, events)

    def _maybe_emit_start(self, label: str, st: _LabelState, score: float, events: list[Event]) -> None:
        if st.last_above_end - st.start + 1e-9 >= self.settings.min_event_seconds:
            st.started = True
            events.append(self._event(st, "start", st.start, None, score))

    def _close(self, st: _LabelState, score: float, events: list[Event]) -> None:
        if st.started:
            events.append(self._event(st, "end", st.start, st.last_above_end, score))
            st.last_end = st.last_above_end
        st.active = st.started = False
        st.below = 0
        # Windows of the closed event must not re-trigger it.
        st.history.clear()

    def _event(
        self, st: _LabelState, kind: EventKind, start: float, end: float | None, confidence: float
    ) -> Event:
        label = self.labels[st.index]
        return Event(
            kind=kind,
            label=label,
            start=start,
            end=end,
            confidence=confidence,
            peak=st.peak,
            mean=st.total / max(st.count, 1),
            windows=st.count,
            origin=self.origin,
        )

    def process(
        self,
        scores: np.ndarray,
        times: Sequence[float] | np.ndarray,
        *,
        levels_dbfs: Sequence[float] | np.ndarray | None = None,
    ) -> list[Event]:
        """Feed windows (scores shape (N, labels), N start times) in order; return their events."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ParameterError(
                f"scores: expected shape (windows, labels), got {scores.shape}",
                parameter="scores",
                value=scores.shape,
            )
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.shape[0] != scores.shape[0]:
            raise ParameterError(
                f"times: got {times.shape[0]} times for {scores.shape[0]} windows",
                parameter="times",
                value=times.shape[0],
            )
        levels: Iterable[float | None] = (
            [None] * len(times) if levels_dbfs is None else np.asarray(levels_dbfs, dtype=np.float64)
        )
        events: list[Event] = []
        for row, t, level in zip(scores, times, levels, strict=True):
            events.extend(self.update(row, time=float(t), level_dbfs=None if level is None else float(level)))
        return events

    def finish(self) -> list[Event]:
        """End every open event (at its last above-threshold window); call when a stream ends."""
        events: list[Event] = []
        for st in self._states.values():
            if st.active:
                self._close(st, st.history[-1][3] if st.history else 0.0, events)
        return events


def detect(
    scores: np.ndarray,
    times: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    settings: DetectorSettings | None = None,
    *,
    window_seconds: float,
    hop_seconds: float | None = None,
    levels_dbfs: Sequence[float] | None = None,
    origin: datetime | None = None,
) -> list[Event]:
    """Return all events (start and end, in order) of a whole scored stream, open ones closed."""
    detector = Detector(
        labels, settings, window_seconds=window_seconds, hop_seconds=hop_seconds, origin=origin
    )
    return detector.process(scores, times, levels_dbfs=levels_dbfs) + detector.finish()


@dataclass(frozen=True)
class Detection:
    """A complete event (its end `Event`) and the stream time at which its start was reported."""

    event: Event
    reported: float

    @property
    def label(self) -> str:
        """The event's label."""
        return self.event.label

    @property
    def start(self) -> float:
        """Seconds from the stream start to the event's start."""
        return self.event.start

    @property
    def end(self) -> float:
        """Seconds from the stream start to the event's end."""
        return self.event.start if self.event.end is None else self.event.end

    @property
    def peak(self) -> float:
        """Highest score of the event's windows."""
        return self.event.peak

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "label": self.label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "reported": round(self.reported, 3),
            "peak": round(self.peak, 4),
        }


def detections(
    scores: np.ndarray,
    times: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    settings: DetectorSettings | None = None,
    *,
    window_seconds: float,
    hop_seconds: float | None = None,
    levels_dbfs: Sequence[float] | np.ndarray | None = None,
    origin: datetime | None = None,
) -> list[Detection]:
    """Replay scored windows through a `Detector`; return the complete events it raises.

    An event is reported when the window that emits its start event ends (what a live monitor
    sees); events still open at the end of the stream are closed there.
    """
    detector = Detector(
        labels, settings, window_seconds=window_seconds, hop_seconds=hop_seconds, origin=origin
    )
    rows = np.asarray(scores, dtype=np.float64)
    starts = np.asarray(times, dtype=np.float64).reshape(-1)
    levels = None if levels_dbfs is None else np.asarray(levels_dbfs, dtype=np.float64)
    reported: dict[str, float] = {}
    out: list[Detection] = []

    def collect(events: list[Event], now: float) -> None:
        for event in events:
            if event.kind == "start":
                reported[event.label] = now
            else:
                out.append(Detection(event, reported.pop(event.label, now)))

    for i, t in enumerate(starts):
        level = None if levels is None else float(levels[i])
        quiet = detector.gated(level)
        collect(
            detector.update(None if quiet else rows[i], time=float(t), level_dbfs=level),
            float(t) + window_seconds,
        )
    last = float(starts[-1]) + window_seconds if len(starts) else 0.0
    collect(detector.finish(), last)
    return out


# -- the settings a model folder implies -----------------------------------------------------------
def model_settings(
    metadata: Mapping[str, Any] | None,
    labels: Sequence[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    background_label: str | None = None,
) -> DetectorSettings:
    """Return the detector a model implies: its calibration (micmon.json), with `overrides` on top.

    `overrides` are settings given explicitly (flags, config keys; None values are ignored) and
    always win: an explicit ``threshold`` replaces calibrated per-label ``thresholds`` too. Without
    targets or thresholds anywhere, every label but the background label (`background_label`, else
    the one the model was trained with) is watched.
    """
    stored = (metadata or {}).get("detector")
    settings = DetectorSettings()
    if isinstance(stored, Mapping) and stored:
        try:
            settings = DetectorSettings.from_dict(stored)
        except (ParameterError, TypeError) as exc:
            raise ModelError(
                f"micmon.json: 'detector' settings are invalid ({exc}); run "
                "`micmon evaluate --calibrate` again"
            ) from None
    # None means "not given", except for the levels, where it switches the gate off.
    explicit = {
        k: v for k, v in (overrides or {}).items() if v is not None or k in ("min_dbfs", "silence_dbfs")
    }
    if "targets" in explicit:
        explicit["targets"] = tuple(explicit["targets"])
    if "threshold" in explicit and "thresholds" not in explicit and settings.thresholds:
        # The calibrated thresholds also named the watched labels: keep watching those.
        explicit["thresholds"] = {}
        explicit.setdefault("targets", settings.targets or tuple(settings.thresholds))
    if explicit:
        settings = settings.with_(**explicit)
    training = (metadata or {}).get("training") or {}
    background = background_label or training.get("background_label")
    if not settings.targets and not settings.thresholds and background in labels:
        others = tuple(label for label in labels if label != background)
        if others:
            settings = settings.with_(targets=others)
    return settings


def model_hop(metadata: Mapping[str, Any] | None, window_seconds: float, hop: float | None = None) -> float:
    """Return the hop a model is listened with: `hop`, else its calibration's, else a quarter window."""
    calibrated = ((metadata or {}).get("calibration") or {}).get("hop_seconds")
    for value in (hop, calibrated):
        if value:
            return check_hop(value, window_seconds)
    return window_seconds * DEFAULT_HOP_FRACTION
