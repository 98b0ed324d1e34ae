"""What a running monitor is doing right now: audio health, level and scores, counters, metrics.

`LiveStatus` is fed by the `Monitor` on its listening thread (each window, each event, capture up
and down) and read from any other thread (the web page, MQTT availability). It keeps the last
``series_seconds`` of levels and scores in a bounded deque. The audio is *healthy* while windows
arrive and are not digital silence; it is *down* while the capture is being reopened and
*silent* once every window for ``silence_seconds`` was below the silence floor (the detector's
``silence_dbfs``: a muted or unplugged input that still delivers zeros).

`prometheus_text` renders a monitor's counters in the Prometheus text exposition format.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from micmon.detect import SILENCE_DBFS

if TYPE_CHECKING:
    from micmon.detect import Event
    from micmon.monitor import Monitor, WindowResult

#: Seconds of digital silence before the audio counts as not flowing.
SILENCE_SECONDS = 10.0
#: Seconds of level and score history kept for displays.
SERIES_SECONDS = 60.0
#: Upper bound of points kept (a 0.05 s hop over a minute).
MAX_POINTS = 1200

STARTING, OK, DOWN, SILENT = "starting", "ok", "down", "silent"

HealthListener = Callable[[bool, "float | None"], None]


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


class LiveStatus:
    """Thread-safe live state of a monitor (health, level/score series, events by label).

    Parameters
    ----------
    targets : sequence of str
        The labels the detector watches (the scores kept).
    series_seconds : float > 0
        Seconds of level and score history kept.
    silence_seconds : float > 0
        Seconds of digital silence after which the audio counts as not flowing.
    silence_dbfs : float <= 0
        The silence floor: quieter windows are digital silence (`micmon.detect.SILENCE_DBFS`).
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        series_seconds: float = SERIES_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
        silence_dbfs: float = SILENCE_DBFS,
    ) -> None:
        self.targets = tuple(targets)
        self.silence_dbfs = float(silence_dbfs)
        self.series_seconds = float(series_seconds)
        self.silence_seconds = float(silence_seconds)
        self._lock = threading.Lock()
        self._series: deque[tuple[float, float | None, tuple[float, ...]]] = deque(maxlen=MAX_POINTS)
        self._health = STARTING
        self._capturing = False
        self._silent_since: float | None = None
        self._silent_for = 0.0
        self._last_window: float | None = None  # monotonic
        self._level: float | None = None
        self._scores: dict[str, float] = {}
        self._active: dict[str, float] = {}  # label -> start (Unix seconds)
        self.events_by_label: Counter[str] = Counter()
        self._listeners: list[HealthListener] = []

    # -- feeding (listening thread) ---------------------------------------------------------------
    def add_listener(self, listener: HealthListener) -> None:
        """Call ``listener(healthy, level_dbfs)`` after each window and on each health change."""
        self._listeners.append(listener)

    def window(self, result: WindowResult) -> None:
        """Take in one scored window."""
        now = time.monotonic()
        level = result.level_dbfs
        with self._lock:
            self._capturing = True
            self._last_window = now
            self._level = _finite(level)
            self._scores = {label: float(result.scores.get(label, 0.0)) for label in self.targets}
            self._series.append(
                (time.time(), self._level, tuple(round(self._scores[t], 4) for t in self.targets))
            )
            cutoff = time.time() - self.series_seconds
            while self._series and self._series[0][0] < cutoff:
                self._series.popleft()
            # Silence is measured in stream time, so a replayed file behaves as the live input.
            if level < self.silence_dbfs:
                if self._silent_since is None:
                    self._silent_since = result.start
                self._silent_for = result.end - self._silent_since
                silent = self._silent_for >= self.silence_seconds
            else:
                self._silent_since = None
                self._silent_for = 0.0
                silent = False
            health = SILENT if silent else OK
        self._set_health(health, self._level)

    def capture(self, up: bool) -> None:
        """Say the capture delivers audio (up) or has stopped (down)."""
        with self._lock:
            self._capturing = up
            if not up:
                self._silent_since = None
                self._silent_for = 0.0
                self._level = None
        if not up:
            self._set_health(DOWN, None)

    def event(self, event: Event) -> None:
        """Take in an event (counts starts by label, tracks what is going on)."""
        with self._lock:
            if event.kind == "start":
                self.events_by_label[event.label] += 1
                self._active[event.label] = event.origin.timestamp() + event.start
            else:
                self._active.pop(event.label, None)

    def _set_health(self, health: str, level: float | None) -> None:
        with self._lock:
            self._health = health
        healthy = health == OK
        for listener in list(self._listeners):
            try:
                listener(healthy, level)
            except Exception:  # a listener must not stop the listening loop
                import logging

                logging.getLogger(__name__).exception("status listener failed")

    # -- reading (any thread) ---------------------------------------------------------------------
    @property
    def health(self) -> str:
        """starting, ok, down or silent."""
        with self._lock:
            return self._health

    @property
    def silent_seconds(self) -> float:
        """Seconds (of stream time) the input has been below the silence floor without a break."""
        with self._lock:
            return self._silent_for

    @property
    def healthy(self) -> bool:
        """Whether audio flows (windows arrive and are not digital silence)."""
        return self.health == OK

    def last_window_age(self) -> float | None:
        """Seconds since the last window arrived (None before the first)."""
        with self._lock:
            last = self._last_window
        return None if last is None else time.monotonic() - last

    def snapshot(self) -> dict[str, Any]:
        """Return the current state as a JSON-ready dict."""
        age = self.last_window_age()
        with self._lock:
            return {
                "health": self._health,
                "healthy": self._health == OK,
                "capturing": self._capturing,
                "level_dbfs": self._level,
                "scores": {k: round(v, 4) for k, v in self._scores.items()},
                "active": {k: round(v, 3) for k, v in self._active.items()},
                "last_window_age": None if age is None else round(age, 3),
                "events_by_label": dict(self.events_by_label),
                "time": round(time.time(), 3),
            }

    def series(self) -> dict[str, Any]:
        """Return the last `series_seconds`: {"time": [...], "level_dbfs": [...], "scores": {...}}."""
        with self._lock:
            points = list(self._series)
        return {
            "time": [round(p[0], 3) for p in points],
            "level_dbfs": [p[1] for p in points],
            "scores": {t: [p[2][i] for p in points] for i, t in enumerate(self.targets)},
        }


# -- Prometheus ----------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(
    lines: list[str], name: str, kind: str, help_text: str, samples: Sequence[tuple[dict[str, str], float]]
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        tags = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        text = (
            "NaN"
            if math.isnan(value)
            else ("+Inf" if value == math.inf else "-Inf" if value == -math.inf else repr(float(value)))
        )
        lines.append(f"{name}{{{tags}}} {text}" if tags else f"{name} {text}")


def prometheus_text(monitor: Monitor) -> str:
    """Return `monitor`'s counters and gauges in the Prometheus text format (version 0.0.4)."""
    stats, status = monitor.stats, monitor.status
    lines: list[str] = []
    _metric(
        lines,
        "micmon_windows_scored_total",
        "counter",
        "Windows scored by the model (not counting those skipped by the loudness gate).",
        [({}, stats.windows - stats.gated)],
    )
    _metric(
        lines,
        "micmon_windows_gated_total",
        "counter",
        "Windows skipped by the loudness gate (min_dbfs).",
        [({}, stats.gated)],
    )
    counts = dict(status.events_by_label)
    _metric(
        lines,
        "micmon_events_total",
        "counter",
        "Detected sounds (event starts) by label.",
        [({"label": label}, counts.get(label, 0)) for label in sorted(set(status.targets) | set(counts))],
    )
    _metric(
        lines,
        "micmon_audio_dropped_seconds_total",
        "counter",
        "Seconds of captured audio dropped because scoring fell behind.",
        [({}, monitor.dropped_seconds)],
    )
    _metric(
        lines,
        "micmon_capture_restarts_total",
        "counter",
        "Times the audio capture was reopened after it stopped.",
        [({}, stats.reconnects)],
    )
    failures: Counter[str] = Counter()
    for runner in monitor.actions.runners:
        failures[type(runner.action).name] += runner.failures
    _metric(
        lines,
        "micmon_action_failures_total",
        "counter",
        "Failed action attempts by action type.",
        [({"type": kind}, count) for kind, count in sorted(failures.items())],
    )
    age = status.last_window_age()
    _metric(
        lines,
        "micmon_last_window_age_seconds",
        "gauge",
        "Seconds since the last audio window arrived (NaN before the first).",
        [({}, math.nan if age is None else age)],
    )
    _metric(
        lines,
        "micmon_audio_up",
        "gauge",
        "1 while audio flows (not down, not digital silence), else 0.",
        [({}, 1.0 if status.healthy else 0.0)],
    )
    snap = status.snapshot()
    level = snap["level_dbfs"]
    _metric(
        lines,
        "micmon_input_level_dbfs",
        "gauge",
        "RMS level of the last window in dBFS.",
        [({}, -math.inf if level is None else level)],
    )
    _metric(
        lines,
        "micmon_score",
        "gauge",
        "Score of the last window by target label.",
        [({"label": label}, snap["scores"].get(label, 0.0)) for label in status.targets],
    )
    return "\n".join(lines) + "\n"
