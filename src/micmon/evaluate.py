"""Replay labelled recordings through the monitor's path and measure what a user would see.

The path is exactly the one `micmon monitor` runs live: `AudioFile` windows with a hop ->
``model.predict_proba`` -> `Detector`. Scoring (the slow part) happens once per recording
(`score_recording`); detection and metrics (`evaluate_scores`) are cheap, so `calibrate` can
replay the stored scores under many detector settings.

Metrics, per recording and overall:

- window accuracy and per-label precision / recall / F1 of the best-scoring label per window;
- event recall: a labelled run of a watched label counts as found when a detected event of that
  label overlaps it;
- false alarms per hour: detected events overlapping no labelled run of their label;
- detection delay: from the start of a found run to the moment the monitor would have reported
  it (the end of the window whose score emitted the start event).
"""

from __future__ import annotations

import math
import os
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from micmon._plot import pyplot, save_png
from micmon.audio import AudioDirectory, AudioFile, probe_duration
from micmon.dataset.dataset import choose_recordings
from micmon.detect import (
    BACKGROUND_LABELS,
    Detection,
    Detector,
    DetectorSettings,
    detections,
    model_hop,
    model_settings,
)
from micmon.errors import AudioError, LabelsError, ModelError, ParameterError
from micmon.features import FeatureSpec, WindowFeatures, dbfs, score_windows
from micmon.labels import Labels, LabelSegment

#: Windows scored per call to the model (as `micmon predict`'s default): the CNN's activations
#: grow with the batch (its first block holds ~0.5 MB a window), 256 windows cost ~100 MB more
#: RSS for no speed.
SCORE_BATCH = 64
#: Batches the model may still be scoring while the next ones are read (bounds memory).
SCORE_AHEAD = 2
#: Thresholds tried by `calibrate`.
_COARSE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CALIBRATION_THRESHOLDS: tuple[float, ...] = (*_COARSE, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995)
#: (k, n) pairs tried by `calibrate`: an event starts when k of the last n windows are above.
CALIBRATION_KN: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (2, 3), (3, 3), (3, 4), (3, 5), (4, 6))
#: How `calibrate` picks among thresholds the calibration audio cannot tell apart.
CALIBRATION_PREFER: tuple[str, ...] = ("middle", "strict", "loose", "clear", "clear-loose", "auto")
#: The `prefer` values that keep the threshold above the room's nearest lookalike.
_ABOVE_ROOM: tuple[str, ...] = ("clear", "clear-loose")
#: A label's calibrated threshold rests on so few of its labelled events below this: calibration
#: sets it just low enough to find them, which says little about the label's events to come.
MIN_CALIBRATION_EVENTS = 3
#: m values tried by `calibrate`: an event ends after m windows below.
CALIBRATION_M: tuple[int, ...] = (1, 2, 4)
#: Remixed room audio (`remix_background`): the second recording of a pair is mixed in this many
#: dB (drawn in the range) below the first's mean level, ...
REMIX_LEVEL_DB = (-12.0, -3.0)
#: ... and shifted (circularly) by this share of its length (drawn in the range) ...
REMIX_SHIFT = (0.2, 0.8)
#: ... for at most this many pairs (six: every pair of four recordings).
REMIX_PAIRS = 6
#: The quiet-room check (`quiet_room_scores`): this many generated windows of a microphone's own
#: hiss at night (`micmon.model.augment.quiet_room_samples`), ...
QUIET_ROOM_WINDOWS = 96
#: ... and a label whose highest score over them comes this close to its threshold is at risk.
QUIET_ROOM_MARGIN = 0.1
#: `evaluate` lists this many close calls: the highest scores outside labelled events.
CLOSE_CALLS = 5
#: Stream origin used for replays, so event times are reproducible.
_ORIGIN = datetime(2000, 1, 1, tzinfo=timezone.utc)
_SECONDS_PER_HOUR = 3600.0


class Scorer(Protocol):
    """What evaluation needs from a model: its labels, feature spec and window scores."""

    @property
    def labels(self) -> Sequence[str]:  # pragma: no cover - protocol
        """Label names, in the order of the score columns."""
        ...

    @property
    def spec(self) -> FeatureSpec | None:  # pragma: no cover - protocol
        """The feature spec the model was trained on."""
        ...

    def predict_proba(self, windows: Any) -> np.ndarray:  # pragma: no cover - protocol
        """Return scores of shape (N, labels) for N int16 windows."""
        ...


# -- scoring -------------------------------------------------------------------------------------
@dataclass
class RecordingScores:
    """Scores of every window of one labelled recording, plus its truth."""

    name: str
    path: str
    labels: tuple[str, ...]
    window_seconds: float
    hop_seconds: float
    duration: float
    times: np.ndarray  # (N,) window start, seconds
    scores: np.ndarray  # (N, labels)
    levels: np.ndarray  # (N,) dBFS
    truth: list[str | None]  # label covering most of each window
    runs: list[LabelSegment]  # labelled runs (consecutive equal labels merged)

    @property
    def hours(self) -> float:
        """Length of the recording in hours."""
        return self.duration / _SECONDS_PER_HOUR


def label_runs(segments: Iterable[LabelSegment], duration: float) -> list[LabelSegment]:
    """Return labelled runs clipped to `duration`, consecutive segments of one label merged."""
    runs: list[LabelSegment] = []
    for seg in segments:
        start = min(seg.start, duration)
        end = duration if seg.end is None else min(seg.end, duration)
        if end <= start:
            continue
        if runs and runs[-1].label == seg.label and abs(runs[-1].end - start) < 1e-6:  # type: ignore[operator]
            runs[-1] = LabelSegment(runs[-1].start, end, seg.label)
        else:
            runs.append(LabelSegment(start, end, seg.label))
    return runs


def score_recording(
    recording: str | os.PathLike[str] | AudioDirectory,
    model: Scorer,
    *,
    hop: float | None = None,
    batch_size: int = SCORE_BATCH,
    ffmpeg_bin: str = "ffmpeg",
    start: float = 0.0,
    duration: float | None = None,
    require_labels: bool = True,
    on_scores: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> RecordingScores:
    """Score every window of a recording as `monitor` would (windows every `hop` seconds).

    `recording` is a sample folder (audio.* + labels.json) or, with ``require_labels=False``, any
    audio file. `hop` defaults to the model's (`micmon.detect.model_hop`). `on_scores(times, scores)`
    sees each scored batch as it is done (for streaming output). Raises AudioError when labels are
    required and missing, or when the audio is shorter than one window.
    """
    if isinstance(recording, AudioDirectory):
        directory: AudioDirectory | None = recording
    elif Path(recording).is_dir() or require_labels:
        directory = AudioDirectory(recording)
    else:
        directory = None
    labels = directory.labels if directory is not None else None
    if labels is None and require_labels:
        where = directory.path if directory is not None else str(recording)
        raise AudioError(
            f"{where}: no labels.json; evaluation needs labelled recordings (write one with `micmon label`)"
        )
    spec = model.spec
    if spec is None:
        raise ModelError("the model has no feature spec; train it (or load a saved one) first")
    if labels is not None and directory is not None:
        check_labels_known(labels, model.labels, where=directory.labels_file or directory.path)
    hop = model_hop(getattr(model, "metadata", None), spec.window_seconds, hop)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(
            f"batch_size: must be a positive integer, got {batch_size!r}",
            parameter="batch_size",
            value=batch_size,
        )
    audio_file = directory.audio_file if directory is not None else str(recording)
    times: list[float] = []
    truth: list[str | None] = []
    levels: list[float] = []
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    features = WindowFeatures(spec)  # overlapping windows share their frames
    # The model scores one batch in a worker thread while this one reads and computes the next:
    # LiteRT releases the GIL while it runs, so network and front end overlap on two cores.
    pending: deque[tuple[np.ndarray, Future[np.ndarray]]] = deque()

    def collect(keep: int) -> None:
        while len(pending) > keep:
            batch_times, future = pending.popleft()
            scores = future.result()
            chunks.append(scores)
            if on_scores is not None:
                on_scores(batch_times, scores)

    def flush(pool: ThreadPoolExecutor) -> None:
        if batch:
            batch_times = np.asarray(times[-len(batch) :], dtype=np.float64)
            if hasattr(model, "scores"):
                x = features.at_times(np.stack(batch), batch_times)  # here: frames are shared in order
                pending.append((batch_times, pool.submit(_scores_of, model, x)))
            else:
                pending.append(
                    (batch_times, pool.submit(score_windows, model, np.stack(batch), list(batch_times)))
                )
            batch.clear()
            collect(SCORE_AHEAD)

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="micmon-score") as pool,
        AudioFile(
            directory if directory is not None else audio_file,
            start=start,
            duration=duration,
            window_seconds=spec.window_seconds,
            sample_rate=spec.sample_rate,
            channels=spec.channels,
            hop=hop,
            ffmpeg_bin=ffmpeg_bin,
        ) as source,
    ):
        try:
            for segment in source:
                times.append(segment.start)
                truth.append(segment.label)
                levels.append(segment.dbfs)
                batch.append(segment.audio)
                if len(batch) >= batch_size:
                    flush(pool)
            flush(pool)
            collect(0)
        finally:
            for _, future in pending:
                future.cancel()
    if not times:
        raise AudioError(f"{audio_file}: shorter than one {spec.window_seconds:g} s window; nothing to score")
    length = probe_duration(audio_file, ffmpeg_bin=ffmpeg_bin)
    end = times[-1] + spec.window_seconds
    length = max(length, end) if math.isfinite(length) else end
    if duration is not None:
        length = min(length, start + duration)
    name = directory.name if directory is not None else Path(audio_file).name
    return RecordingScores(
        name=name,
        path=directory.path if directory is not None else audio_file,
        labels=tuple(model.labels),
        window_seconds=spec.window_seconds,
        hop_seconds=hop,
        duration=length,
        times=np.asarray(times, dtype=np.float64),
        scores=np.concatenate(chunks),
        levels=np.asarray(levels, dtype=np.float64),
        truth=truth,
        runs=label_runs(labels.segments(length), length) if labels is not None else [],
    )


def _scores_of(model: Any, features: np.ndarray) -> np.ndarray:
    return np.asarray(model.scores(features), dtype=np.float32)


def check_labels_known(labels: Labels, model_labels: Sequence[str], *, where: str) -> None:
    """Raise LabelsError when a recording uses labels the model was not trained on.

    Windows of an unknown label have no right answer: every detection in them would be counted
    as a false alarm (and calibration would tune on that), so the report would be wrong.
    """
    unknown = [name for name in labels.names if name not in model_labels]
    if unknown:
        raise LabelsError(
            f"{where}: label(s) {', '.join(map(repr, unknown))} unknown to the model "
            f"(it knows {', '.join(model_labels)}); their windows would count as "
            "false alarms. Relabel them with the model's labels, or evaluate a model "
            "trained on them"
        )


def score_directory(
    audio_dir: str | os.PathLike[str],
    model: Scorer,
    *,
    hop: float | None = None,
    ffmpeg_bin: str = "ffmpeg",
    progress: Callable[[AudioDirectory], None] | None = None,
) -> list[RecordingScores]:
    """Score every labelled sample folder at or below `audio_dir`."""
    folders = AudioDirectory.scan(audio_dir)
    if not folders:
        raise AudioError(f"{audio_dir}: no labelled sample folders (audio.* + labels.json) at or below it")
    out = []
    for folder in folders:
        if progress is not None:
            progress(folder)
        out.append(score_recording(folder, model, hop=hop, ffmpeg_bin=ffmpeg_bin))
    return out


# -- detection -----------------------------------------------------------------------------------
def detect_recording(rec: RecordingScores, settings: DetectorSettings) -> list[Detection]:
    """Replay a scored recording through a `Detector`; return its complete events."""
    return detections(
        rec.scores,
        rec.times,
        rec.labels,
        settings,
        window_seconds=rec.window_seconds,
        hop_seconds=rec.hop_seconds,
        levels_dbfs=rec.levels,
        origin=_ORIGIN,
    )


# -- metrics -------------------------------------------------------------------------------------
@dataclass
class Metrics:
    """Counts behind every figure, so metrics of several recordings add up exactly."""

    labels: tuple[str, ...]
    targets: tuple[str, ...]
    confusion: np.ndarray  # (labels, labels): truth row, predicted column
    seconds: float = 0.0
    runs: int = 0
    found: int = 0
    detected: int = 0
    false_alarms: int = 0
    delays: list[float] = field(default_factory=list)

    def __add__(self, other: Metrics) -> Metrics:
        if self.labels != other.labels:
            raise ParameterError(
                f"labels: cannot add metrics of {other.labels} to {self.labels}", parameter="labels"
            )
        return Metrics(
            self.labels,
            self.targets,
            self.confusion + other.confusion,
            self.seconds + other.seconds,
            self.runs + other.runs,
            self.found + other.found,
            self.detected + other.detected,
            self.false_alarms + other.false_alarms,
            self.delays + other.delays,
        )

    @property
    def windows(self) -> int:
        """Windows with a known label."""
        return int(self.confusion.sum())

    @property
    def window_accuracy(self) -> float | None:
        """Share of windows whose best-scoring label is the true one."""
        return None if not self.windows else float(np.trace(self.confusion) / self.windows)

    def per_label(self) -> dict[str, dict[str, float | int | None]]:
        """Return precision, recall, F1 and support of each label, per window."""
        return label_metrics(self.confusion, self.labels)

    @property
    def event_recall(self) -> float | None:
        """Share of labelled runs of watched labels overlapped by a detection of their label."""
        return self.found / self.runs if self.runs else None

    @property
    def hours(self) -> float:
        """Hours of audio evaluated."""
        return self.seconds / _SECONDS_PER_HOUR

    @property
    def false_alarms_per_hour(self) -> float | None:
        """Detections overlapping no labelled run of their label, per hour of audio."""
        return self.false_alarms / self.hours if self.seconds > 0 else None

    @property
    def median_delay(self) -> float | None:
        """Median seconds from a found run's start to its report."""
        return float(np.median(self.delays)) if self.delays else None

    @property
    def worst_delay(self) -> float | None:
        """Largest seconds from a found run's start to its report."""
        return float(max(self.delays)) if self.delays else None

    def to_dict(self) -> dict[str, Any]:
        """Return every figure as a JSON-ready dict."""
        return {
            "windows": self.windows,
            "window_accuracy": _round(self.window_accuracy),
            "labels": {
                label: {name: _round(v) for name, v in d.items()} for label, d in self.per_label().items()
            },
            "targets": list(self.targets),
            "seconds": round(self.seconds, 3),
            "events": self.runs,
            "found": self.found,
            "missed": self.runs - self.found,
            "event_recall": _round(self.event_recall),
            "detected": self.detected,
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": _round(self.false_alarms_per_hour),
            "median_delay": _round(self.median_delay),
            "worst_delay": _round(self.worst_delay),
        }


def label_metrics(confusion: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """Return precision, recall, F1 and support per label of a confusion matrix (truth rows).

    A figure without any window to measure it on is None (and F1 is 0 when the label was
    predicted or present but never right).
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for i, label in enumerate(labels):
        tp = float(confusion[i, i])
        predicted = float(confusion[:, i].sum())
        support = int(confusion[i, :].sum())
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision and recall
            else (0.0 if support or predicted else None)
        )
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Return window accuracy, per-label precision/recall/F1/support and the confusion matrix."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    total = int(confusion.sum())
    per_label = {
        label: {k: _round(v) for k, v in d.items()} for label, d in label_metrics(confusion, labels).items()
    }
    return {
        "accuracy": _round(float(np.trace(confusion) / total)) if total else None,
        "windows": total,
        "per_label": per_label,
        "confusion_matrix": confusion.tolist(),
        "labels": list(labels),
    }


def _round(value: float | int | None, digits: int = 4) -> float | int | None:
    return round(value, digits) if isinstance(value, float) else value


def _overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start < b_end and b_start < a_end


def _label_spans(rec: RecordingScores, label: str) -> list[tuple[float, float]]:
    """Return the (start, end) of every labelled event of a label; an open one ends with the recording."""
    return [(r.start, rec.duration if r.end is None else r.end) for r in rec.runs if r.label == label]


def _false_detections(
    detections: Sequence[Detection], label: str, spans: Sequence[tuple[float, float]]
) -> list[Detection]:
    """Return the detections of a label that overlap none of its labelled events: its false alarms."""
    mine = [d for d in detections if d.label == label]
    return [d for d in mine if not any(_overlaps(d.start, d.end, a, b) for a, b in spans)]


def measure(rec: RecordingScores, detections: Sequence[Detection], targets: Sequence[str]) -> Metrics:
    """Return the metrics of one scored recording given its detections."""
    n = len(rec.labels)
    index = {label: i for i, label in enumerate(rec.labels)}
    confusion = np.zeros((n, n), dtype=np.int64)
    predicted = rec.scores.argmax(axis=1) if len(rec.scores) else np.zeros(0, dtype=np.int64)
    for true, pred in zip(rec.truth, predicted, strict=True):
        if true in index:
            confusion[index[true], int(pred)] += 1
    metrics = Metrics(tuple(rec.labels), tuple(targets), confusion, seconds=rec.duration)
    for label in targets:
        runs = [r for r in rec.runs if r.label == label]
        mine = [d for d in detections if d.label == label]
        metrics.detected += len(mine)
        for run in runs:
            assert run.end is not None
            hits = [d for d in mine if _overlaps(d.start, d.end, run.start, run.end)]
            metrics.runs += 1
            if hits:
                metrics.found += 1
                metrics.delays.append(max(0.0, min(d.reported for d in hits) - run.start))
        metrics.false_alarms += len(_false_detections(mine, label, _label_spans(rec, label)))
    return metrics


# -- reports -------------------------------------------------------------------------------------
@dataclass
class RecordingReport:
    """Metrics and detections of one recording."""

    scores: RecordingScores
    detections: list[Detection]
    metrics: Metrics

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.scores.name,
            "path": self.scores.path,
            "duration": round(self.scores.duration, 3),
            **self.metrics.to_dict(),
            "detections": [d.to_dict() for d in self.detections],
        }


@dataclass
class EvaluationReport:
    """Metrics per recording and overall, under one set of detector settings."""

    recordings: list[RecordingReport]
    overall: Metrics
    settings: DetectorSettings
    targets: tuple[str, ...]
    hop_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "detector": self.settings.to_dict(),
            "hop_seconds": self.hop_seconds,
            "targets": list(self.targets),
            "overall": self.overall.to_dict(),
            "recordings": [r.to_dict() for r in self.recordings],
        }


def detector_targets(labels: Sequence[str], settings: DetectorSettings) -> tuple[str, ...]:
    """Return the labels a Detector with these settings watches."""
    return Detector(labels, settings, window_seconds=1.0).targets


def quiet_room_scores(
    model: Scorer, settings: DetectorSettings, *, windows: int = QUIET_ROOM_WINDOWS, seed: int = 0
) -> dict[str, float]:
    """Return each watched label's highest score over a generated quiet room (a microphone's hiss).

    Recordings made by day rarely hold a night's quiet room; a model may hear its hiss as a
    noise-like sound. Windows the settings' loudness gates skip (`min_dbfs`, `silence_dbfs`)
    are not scored, as the monitor skips them.
    """
    from micmon.model.augment import quiet_room_samples

    spec = model.spec
    if spec is None:
        raise ModelError("model: has no feature spec; the quiet-room check needs one")
    detector = Detector(model.labels, settings, window_seconds=spec.window_seconds)
    samples = quiet_room_samples(spec, windows, rng=seed)
    heard = [i for i, window in enumerate(samples) if not detector.gated(dbfs(window))]
    targets = detector.targets
    if not heard:
        return {label: 0.0 for label in targets}
    scores = score_windows(model, samples[heard], [0.0] * len(heard))
    return {label: float(scores[:, list(model.labels).index(label)].max()) for label in targets}


def quiet_room_risks(tops: Mapping[str, float], settings: DetectorSettings) -> dict[str, tuple[float, float]]:
    """Return (top score, threshold) of the labels whose quiet-room top comes within the margin of
    their threshold (`QUIET_ROOM_MARGIN`): those a quiet night may set off."""
    return {
        label: (top, settings.threshold_for(label))
        for label, top in tops.items()
        if top >= settings.threshold_for(label) - QUIET_ROOM_MARGIN
    }


@dataclass(frozen=True)
class CloseCall:
    """A moment outside every labelled event of a watched label that scored high for that label."""

    recording: str  # the recording's display name
    path: str
    label: str
    start: float  # seconds: the first window of the moment ...
    end: float  # ... to the end of its last
    score: float
    threshold: float  # the label's threshold under the report's settings
    alarm: bool  # whether the detector raised a false alarm on it
    #: in a remix (`path` then names its first recording): the one mixed in, quieter, and where
    #: in it the moment starts
    mixed_with: str | None = None  # its display name
    mixed_with_path: str | None = None
    mixed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "recording": self.recording,
            "path": self.path,
            "label": self.label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "alarm": self.alarm,
            **(
                {
                    "mixed_with": self.mixed_with,
                    "mixed_with_path": self.mixed_with_path,
                    "mixed_at": round(self.mixed_at, 3),
                }
                if self.mixed_with_path is not None and self.mixed_at is not None
                else {}
            ),
        }


def close_calls(
    report: EvaluationReport, limit: int = CLOSE_CALLS, *, remixes: Sequence[Remix] = ()
) -> list[CloseCall]:
    """Return the highest-scoring moments outside the labelled events of each watched label, highest first.

    These are what holds a calibrated threshold up (or raised the false alarms): the room's
    lookalikes, or an event nobody labelled. Windows the loudness gates skip are left out, as
    the monitor skips them; a moment is its highest window and the neighbours scoring at least
    half as much. A recording of the report made by one of `remixes` is named as its first
    recording, with the second and where in it the moment is (past the second's end a remix is
    the first alone, heard already: left out).
    """
    mixes = {os.path.normpath(m.directory.path): m for m in remixes}
    made = [mixes.get(os.path.normpath(r.scores.path)) for r in report.recordings]
    recorded = [r.scores for r, mix in zip(report.recordings, made, strict=True) if mix is None]
    names = dict(zip((r.path for r in recorded), display_names(recorded), strict=True))

    def name(path: str) -> str:
        return names.get(path, os.path.basename(path.rstrip(os.sep)))

    calls: list[CloseCall] = []
    for rep, mix in zip(report.recordings, made, strict=True):
        rec = rep.scores
        if not len(rec.times):
            continue
        path = rec.path if mix is None else mix.first
        gate = Detector(rec.labels, report.settings, window_seconds=rec.window_seconds)
        heard = np.array([not gate.gated(float(level)) for level in rec.levels], dtype=bool)
        if mix is not None:
            heard &= rec.times < mix.second_duration
        for label in report.targets:
            column = rec.labels.index(label)
            spans = _label_spans(rec, label)
            free = heard & np.array(
                [not any(_overlaps(t, t + rec.window_seconds, a, b) for a, b in spans) for t in rec.times],
                dtype=bool,
            )
            column_scores = rec.scores[:, column]
            false = _false_detections(rep.detections, label, spans)
            for _ in range(limit):
                if not free.any():
                    break
                peak = int(np.flatnonzero(free)[np.argmax(column_scores[free])])
                first = last = peak  # the moment: neighbours scoring at least half the peak
                floor = column_scores[peak] / 2
                while first > 0 and free[first - 1] and column_scores[first - 1] >= floor:
                    first -= 1
                while last + 1 < len(free) and free[last + 1] and column_scores[last + 1] >= floor:
                    last += 1
                free[first : last + 1] = False
                start, end = float(rec.times[first]), float(rec.times[last]) + rec.window_seconds
                calls.append(
                    CloseCall(
                        recording=name(path),
                        path=path,
                        label=label,
                        start=start,
                        end=end,
                        score=float(column_scores[peak]),
                        threshold=report.settings.threshold_for(label),
                        alarm=any(_overlaps(d.start, d.end, start, end) for d in false),
                        mixed_with=None if mix is None else name(mix.second),
                        mixed_with_path=None if mix is None else mix.second,
                        mixed_at=None if mix is None else mix.second_time(start),
                    )
                )
    calls.sort(key=lambda c: -c.score)
    return calls[:limit]


def evaluate_scores(
    recordings: Sequence[RecordingScores], settings: DetectorSettings | None = None
) -> EvaluationReport:
    """Run the detector over scored recordings and measure every recording and the total."""
    if not recordings:
        raise ParameterError(
            "recordings: nothing to evaluate; pass at least one scored recording", parameter="recordings"
        )
    settings = settings or DetectorSettings()
    labels = recordings[0].labels
    targets = detector_targets(labels, settings)
    reports = []
    for rec in recordings:
        if rec.labels != labels:
            raise ParameterError(
                f"recordings: {rec.name} was scored with labels {rec.labels}, the others with {labels}",
                parameter="recordings",
            )
        detections = detect_recording(rec, settings)
        reports.append(RecordingReport(rec, detections, measure(rec, detections, targets)))
    overall = reports[0].metrics
    for r in reports[1:]:
        overall = overall + r.metrics
    return EvaluationReport(reports, overall, settings, targets, recordings[0].hop_seconds)


def evaluate(
    audio_dir: str | os.PathLike[str],
    model: Scorer,
    *,
    settings: DetectorSettings | None = None,
    hop: float | None = None,
    ffmpeg_bin: str = "ffmpeg",
) -> EvaluationReport:
    """Score and measure every labelled recording under `audio_dir` (settings: the model's)."""
    if settings is None:
        settings = model_settings(getattr(model, "metadata", None), model.labels)
    recordings = score_directory(audio_dir, model, hop=hop, ffmpeg_bin=ffmpeg_bin)
    return evaluate_scores(recordings, settings)


# -- held-out recordings ---------------------------------------------------------------------------
def holdout_recordings(
    datasets: Sequence[Any], count: int, *, seed: int | None = 0
) -> tuple[list[Any], list[Any]]:
    """Split per-recording datasets into (to fit, held out): `count` whole recordings set aside.

    Held-out recordings are for `calibrate`: detector settings tuned on audio the network was
    fitted on look better than they are. At least one recording always stays for fitting. For
    datasets (with `classes`) the choice covers every class two recordings hold, so calibration
    gets events to find and not only background (`micmon.dataset.dataset.choose_recordings`).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ParameterError(
            f"holdout_recordings: must be an integer >= 0, got {count!r}",
            parameter="holdout_recordings",
            value=count,
        )
    if count and count >= len(datasets):
        raise ParameterError(
            f"holdout_recordings: {count} of {len(datasets)} recordings would "
            "leave none to train on; hold out fewer or record more",
            parameter="holdout_recordings",
        )
    held = set(choose_recordings([getattr(d, "classes", None) for d in datasets], count, seed=seed))
    return (
        [d for i, d in enumerate(datasets) if i not in held],
        [d for i, d in enumerate(datasets) if i in held],
    )


def trained_on(metadata: Mapping[str, Any] | None, paths: Iterable[str]) -> list[str]:
    """Return which recording folders (`paths`) the model's network was fitted on.

    micmon.json's training.datasets names each fitted recording by its folder path below the
    audio folder, '__'-joined (as `micmon datagen` names the .npz files); a folder matches when
    its path ends with those parts.
    """
    training = (metadata or {}).get("training") or {}
    fitted = set(training.get("datasets") or []) - set(training.get("holdout_recordings") or [])
    suffixes = [tuple(name.split("__")) for name in fitted]
    out = []
    for path in paths:
        parts = Path(path).parts
        if any(len(s) <= len(parts) and parts[len(parts) - len(s) :] == s for s in suffixes):
            out.append(path)
    return out


# -- calibration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TradeoffPoint:
    """Event recall and false alarms of one detector setting tried by `calibrate`."""

    thresholds: Mapping[str, float]
    k: int
    n: int
    m: int
    found: int
    runs: int
    false_alarms: int
    hours: float
    median_delay: float | None

    @property
    def event_recall(self) -> float:
        """Share of labelled runs found (1.0 when there are none)."""
        return self.found / self.runs if self.runs else 1.0

    @property
    def false_alarms_per_hour(self) -> float:
        """False alarms per hour of audio."""
        return self.false_alarms / self.hours if self.hours else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "thresholds": dict(self.thresholds),
            "k": self.k,
            "n": self.n,
            "m": self.m,
            "event_recall": round(self.event_recall, 4),
            "false_alarms_per_hour": round(self.false_alarms_per_hour, 4),
            "median_delay": _round(self.median_delay),
        }


@dataclass
class Calibration:
    """The chosen detector settings, whether they meet the budget, and the trade-off explored."""

    settings: DetectorSettings
    chosen: TradeoffPoint
    met_budget: bool
    max_false_alarms_per_hour: float
    points: list[TradeoffPoint]
    hop_seconds: float
    recordings: int
    #: remixes of the room calibrated on as well (`calibrate(remixed=...)`), and their hours
    remixes: int = 0
    remixed_hours: float = 0.0
    #: labelled events of each watched label in the audio calibrated on
    events: dict[str, int] = field(default_factory=dict)
    #: the highest threshold the search tried
    top_threshold: float = CALIBRATION_THRESHOLDS[-1]

    def pareto(self) -> list[TradeoffPoint]:
        """Return the best recall reachable at each false-alarm rate, by rising rate."""
        best: list[TradeoffPoint] = []
        for p in sorted(self.points, key=lambda p: (p.false_alarms_per_hour, -p.event_recall)):
            if not best or p.event_recall > best[-1].event_recall:
                best.append(p)
        return best

    @property
    def recorded_hours(self) -> float:
        """Hours of recorded audio calibrated on (remixes left out)."""
        return max(self.chosen.hours - self.remixed_hours, 0.0)

    @property
    def false_alarm_bound(self) -> float:
        """False alarms per hour the chosen setting is shown to stay below, at 95 % confidence.

        Every false alarm counts, but only recorded hours do: a remix hears the same room again,
        so it can show a lookalike the detector falls for, never that it falls for none.
        """
        return false_alarm_bound(self.chosen.false_alarms, self.recorded_hours)

    @property
    def vouched(self) -> bool:
        """Whether the hours of audio calibrated on show the budget is kept (95 % confidence)."""
        return self.false_alarm_bound <= self.max_false_alarms_per_hour

    @property
    def topped_labels(self) -> list[str]:
        """Watched labels calibrated at the highest threshold tried: something else scores as high."""
        return [label for label, t in self.settings.thresholds.items() if t >= self.top_threshold]

    @property
    def thin_labels(self) -> dict[str, int]:
        """Watched labels with fewer than `MIN_CALIBRATION_EVENTS` events calibrated on, and their counts."""
        return {label: n for label, n in self.events.items() if n < MIN_CALIBRATION_EVENTS}

    def to_dict(self) -> dict[str, Any]:
        """Return what is stored beside the settings in micmon.json (no per-point detail)."""
        bound = self.false_alarm_bound
        return {
            "max_false_alarms_per_hour": self.max_false_alarms_per_hour,
            "false_alarms_per_hour_bound": round(bound, 4) if math.isfinite(bound) else None,
            "met_budget": self.met_budget,
            "hop_seconds": self.hop_seconds,
            "recordings": self.recordings,
            "remixes": self.remixes,
            "hours": round(self.chosen.hours, 4),
            "remixed_hours": round(self.remixed_hours, 4),
            "event_recall": round(self.chosen.event_recall, 4),
            "false_alarms_per_hour": round(self.chosen.false_alarms_per_hour, 4),
            "median_delay": _round(self.chosen.median_delay),
            "events": dict(self.events),
            "tradeoff": [p.to_dict() for p in self.pareto()],
        }


#: (threshold, runs found, runs, false alarms, delays) of one setting for one label
_Row = tuple[float, int, int, int, list[float]]


def calibrate(
    recordings: Sequence[RecordingScores],
    *,
    max_false_alarms_per_hour: float,
    base: DetectorSettings | None = None,
    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
    kn: Sequence[tuple[int, int]] = CALIBRATION_KN,
    m_values: Sequence[int] = CALIBRATION_M,
    prefer: str = "middle",
    remixed: Sequence[RecordingScores] = (),
) -> Calibration:
    """Search threshold per label, K of N and M for the best event recall within the budget.

    The budget is shared equally by the watched labels; ties go to fewer false alarms. The
    thresholds the audio calibrated on cannot tell apart (same events found, same false alarms)
    form a range; `prefer` picks from it: "middle" (default) its middle threshold, which keeps a
    margin both ways, for sounds quieter than any heard and for lookalikes louder than any heard;
    "strict" its highest; "loose" its lowest; "clear" the middle of those above every window
    score the label got in recordings where it never sounds (the room's nearest lookalikes), or
    the middle when none is; "clear-loose" the lowest of those above (the middle when none is);
    "auto" "clear-loose" for a detector watching one label, calibrated with audio of the room (a
    recording where it never sounds), else "middle".
    Then the shorter median delay. When no setting
    meets the budget the one with the fewest false alarms is returned with ``met_budget=False``.
    Other settings (min_dbfs, min_event_seconds, cooldown_seconds, targets) are kept from `base`.
    `remixed` (scored remixes of the room, `remix_background`) are calibrated on with the
    recordings; their hours do not count towards vouching for the budget.
    """
    recorded, remixed_hours = len(recordings), sum(r.hours for r in remixed)
    recordings = [*recordings, *remixed]
    if not recordings:
        raise ParameterError(
            "recordings: calibration needs at least one scored recording", parameter="recordings"
        )
    if (
        not isinstance(max_false_alarms_per_hour, (int, float))
        or max_false_alarms_per_hour < 0
        or not math.isfinite(max_false_alarms_per_hour)
    ):
        raise ParameterError(
            f"max_false_alarms_per_hour: must be a number >= 0, got {max_false_alarms_per_hour!r}",
            parameter="max_false_alarms_per_hour",
            value=max_false_alarms_per_hour,
        )
    if prefer not in CALIBRATION_PREFER:
        raise ParameterError(
            f"prefer: must be one of {', '.join(CALIBRATION_PREFER)}, got {prefer!r}",
            parameter="prefer",
            value=prefer,
        )
    if not thresholds or not kn or not m_values:
        raise ParameterError(
            "thresholds/kn/m_values: each needs at least one value to try", parameter="thresholds/kn/m_values"
        )
    base = base or DetectorSettings()
    labels = recordings[0].labels
    targets = detector_targets(labels, base)
    clear = (
        {label: _top_score_without(recordings, label) for label in targets}
        if prefer in (*_ABOVE_ROOM, "auto")
        else {}
    )
    if prefer == "auto":
        one = len(targets) == 1 and clear[targets[0]] > -math.inf
        prefer = "clear-loose" if one else "middle"
    hours = sum(r.hours for r in recordings)
    share = max_false_alarms_per_hour / len(targets)

    # per (k, n, m): per label: per threshold -> (found, runs, false alarms, delays)
    combos: list[tuple[int, int, int]] = [(k, n, m) for k, n in kn for m in m_values]
    table: dict[tuple[int, int, int], dict[str, list[_Row]]] = {}
    for k, n, m in combos:
        per_label: dict[str, list[_Row]] = {}
        for label in targets:
            rows = []
            for threshold in thresholds:
                s = base.with_(thresholds={label: float(threshold)}, targets=(label,), k=k, n=n, m=m)
                total = evaluate_scores(recordings, s).overall
                rows.append((float(threshold), total.found, total.runs, total.false_alarms, total.delays))
            per_label[label] = rows
        table[(k, n, m)] = per_label

    def pick(rows: list[_Row], budget: float, label: str) -> tuple[_Row, bool]:
        ok = [r for r in rows if r[3] <= budget * hours + 1e-9]
        if ok:
            top = min(ok, key=lambda r: (-r[1], r[3], -r[0], _median(r[4])))
            if prefer == "strict":
                return top, True
            tied = sorted((r for r in ok if (r[1], r[3]) == (top[1], top[3])), key=lambda r: r[0])
            if prefer in _ABOVE_ROOM:
                above = [r for r in tied if r[0] > clear[label]]
                if above and prefer == "clear-loose":
                    return above[0], True
                tied = above or tied
            return (tied[0] if prefer == "loose" else tied[len(tied) // 2]), True
        return min(rows, key=lambda r: (r[3], -r[1], -r[0])), False

    points: list[TradeoffPoint] = []
    candidates: list[tuple[TradeoffPoint, bool]] = []
    for (k, n, m), per_label in table.items():
        # every single-threshold point (all labels at the same threshold) for the trade-off curve
        for i, threshold in enumerate(thresholds):
            rows = [per_label[label][i] for label in targets]
            points.append(
                TradeoffPoint(
                    {label: float(threshold) for label in targets},
                    k,
                    n,
                    m,
                    sum(r[1] for r in rows),
                    sum(r[2] for r in rows),
                    sum(r[3] for r in rows),
                    hours,
                    _median([d for r in rows for d in r[4]]),
                )
            )
        chosen = {label: pick(rows, share, label) for label, rows in per_label.items()}
        rows = [c[0] for c in chosen.values()]
        candidates.append(
            (
                TradeoffPoint(
                    {label: c[0][0] for label, c in chosen.items()},
                    k,
                    n,
                    m,
                    sum(r[1] for r in rows),
                    sum(r[2] for r in rows),
                    sum(r[3] for r in rows),
                    hours,
                    _median([d for r in rows for d in r[4]]),
                ),
                all(c[1] for c in chosen.values()),
            )
        )
    within = [c for c, ok in candidates if ok]
    if within:
        best = min(
            within,
            key=lambda p: (-p.found, p.false_alarms, -_mean_threshold(p), _median_key(p), p.n, p.m),
        )
    else:
        best = min((c for c, _ in candidates), key=lambda p: (p.false_alarms, -p.found, p.n))
    settings = base.with_(
        thresholds=dict(best.thresholds), targets=tuple(targets), k=best.k, n=best.n, m=best.m
    )
    return Calibration(
        settings,
        best,
        bool(within),
        float(max_false_alarms_per_hour),
        points,
        recordings[0].hop_seconds,
        recorded,
        len(remixed),
        remixed_hours,
        {label: rows[0][2] for label, rows in table[combos[0]].items()},
        max(float(t) for t in thresholds),
    )


def _top_score_without(recordings: Sequence[RecordingScores], label: str) -> float:
    """Return the highest score `label` got in the recordings where it never sounds (-inf if none)."""
    tops = [
        float(np.max(r.scores[:, r.labels.index(label)]))
        for r in recordings
        if len(r.scores) and all(run.label != label for run in r.runs)
    ]
    return max(tops, default=-math.inf)


def _mean_threshold(p: TradeoffPoint) -> float:
    return float(np.mean(list(p.thresholds.values()))) if p.thresholds else 0.0


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.inf


def _median_key(p: TradeoffPoint) -> float:
    return math.inf if p.median_delay is None else p.median_delay


# -- how far hours of audio vouch for a false-alarm rate -------------------------------------------
#: Confidence of the upper bounds `false_alarm_bound` reports.
CONFIDENCE = 0.95


def false_alarm_bound(false_alarms: int, hours: float, *, confidence: float = CONFIDENCE) -> float:
    """Return the false alarms per hour that `false_alarms` in `hours` rule out at `confidence`.

    The exact Poisson upper limit: 0 alarms in 0.5 h only show a rate below 6 per hour at 95 %.
    """
    if hours <= 0:
        return math.inf
    if not 0.0 < confidence < 1.0:
        raise ParameterError(
            f"confidence: must be in (0, 1), got {confidence!r}", parameter="confidence", value=confidence
        )

    def cdf(mean: float) -> float:  # P(X <= false_alarms) for a Poisson count of this mean
        term = total = math.exp(-mean)
        for k in range(1, false_alarms + 1):
            term *= mean / k
            total += term
        return total

    low, high = float(false_alarms), float(false_alarms) + 10.0 * (math.sqrt(false_alarms) + 3)
    for _ in range(100):  # bisection for cdf(mean) = 1 - confidence
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) > 1 - confidence else (low, mid)
    return high / hours


def hours_to_vouch(max_false_alarms_per_hour: float, *, confidence: float = CONFIDENCE) -> float:
    """Return the hours of target-free audio without a false alarm that show the rate is below
    `max_false_alarms_per_hour` at `confidence`."""
    if max_false_alarms_per_hour <= 0:
        return math.inf
    return -math.log(1 - confidence) / max_false_alarms_per_hour


def background_folders(
    audio_dir: str | os.PathLike[str], background: Sequence[str], *, ignore_case: bool = False
) -> list[AudioDirectory]:
    """Return the sample folders under `audio_dir` labelled all background (recordings of the room).

    With `ignore_case`, "Negative" counts as "negative" (as the detector's fallback list does).
    """

    def fold(names: Iterable[str]) -> set[str]:
        return {n.lower() for n in names} if ignore_case else set(names)

    quiet = fold(background)
    return [
        d for d in AudioDirectory.scan(audio_dir) if d.labels is not None and fold(d.labels.names) <= quiet
    ]


def background_labels(metadata: Mapping[str, Any] | None) -> list[str]:
    """Return the labels that mark a recording as background for a model: its training's
    background label, else `BACKGROUND_LABELS`."""
    background = _trained_background(metadata)
    return [background] if background else list(BACKGROUND_LABELS)


def _trained_background(metadata: Mapping[str, Any] | None) -> str | None:
    background = ((metadata or {}).get("training") or {}).get("background_label")
    return str(background) if background else None


def calibration_folders(
    metadata: Mapping[str, Any] | None, audio_dir: str | os.PathLike[str] | None
) -> list[AudioDirectory]:
    """Return what `micmon evaluate --calibrate` uses by default: the recordings `train
    --holdout-recordings` kept out, and the background recordings under `audio_dir`."""
    training = (metadata or {}).get("training") or {}
    folders = [AudioDirectory(p) for p in training.get("holdout_sources") or [] if Path(p).is_dir()]
    if audio_dir is not None and Path(audio_dir).is_dir():
        seen = {d.path for d in folders}
        # a model micmon trained names its background label exactly; for any other model the
        # fallback list is matched as the detector matches it, whatever the case
        trained = _trained_background(metadata)
        quiet = [trained] if trained else list(BACKGROUND_LABELS)
        folders += [
            d for d in background_folders(audio_dir, quiet, ignore_case=trained is None) if d.path not in seen
        ]
    return folders


@dataclass(frozen=True)
class Remix:
    """One remix of the room: a background recording as recorded with another (or itself) mixed in."""

    directory: AudioDirectory  # the mix, labelled all background
    first: str  # path of the recording heard as recorded ...
    second: str  # ... and of the one mixed in, quieter and shifted:
    shift: float  # seconds: the mix at t hears `second` at t + shift, wrapping round to its start
    second_duration: float  # seconds; past it, the mix is `first` alone

    def second_time(self, t: float) -> float | None:
        """Return where in the second recording the mix is at `t` seconds, None once it has ended."""
        if not 0 <= t < self.second_duration:
            return None
        return (t + self.shift) % self.second_duration


def remix_background(
    recordings: Sequence[RecordingScores],
    folder: str | os.PathLike[str],
    *,
    sample_rate: int,
    background: Sequence[str] = BACKGROUND_LABELS,
    seed: int = 0,
    pairs: int = REMIX_PAIRS,
    ffmpeg_bin: str = "ffmpeg",
) -> Iterator[Remix]:
    """Write the room heard again: each pair of background recordings summed, the second shifted
    in time and quieter; yield each mix as soon as it is written (its `directory` a sample folder
    labelled all background).

    Calibrating on them as well hears each room sound again under other talk, at another level
    and at another offset in the window, as new audio will (issue 8's eleventh to fourteenth
    rounds). Of `recordings` (scored: their levels set the gains), those labelled all
    `background` are mixed; one such recording is mixed with itself. The mixes are mono WAVs at
    `sample_rate` in `folder`. A caller may score a mix and delete it before asking for the next,
    so that at most one is on disk (an hour of mono 16 kHz audio is 115 MB); `list()` makes them
    all at once.
    """
    from micmon.audio.ffmpeg import MONO_FILTER, find_ffmpeg

    quiet = [
        r
        for r in recordings
        if r.runs and r.duration > 0 and {run.label for run in r.runs} <= set(background)
    ]
    if not quiet:
        return
    combos = [(i, j) for i in range(len(quiet)) for j in range(i + 1, len(quiet))] or [(0, 0)]
    gen = np.random.default_rng(seed)
    if len(combos) > pairs:
        combos = sorted(combos[k] for k in gen.choice(len(combos), size=pairs, replace=False))
    ffmpeg = find_ffmpeg(ffmpeg_bin)
    mono = f"aresample={int(sample_rate)},{MONO_FILTER}"
    for n, (i, j) in enumerate(combos):
        a, b = quiet[i], quiet[j]
        a_file, b_file = (
            AudioDirectory(r.path).audio_file if Path(r.path).is_dir() else r.path for r in (a, b)
        )
        shift = float(gen.uniform(*REMIX_SHIFT)) * b.duration
        gain = _mean_dbfs(a.levels) - _mean_dbfs(b.levels) + float(gen.uniform(*REMIX_LEVEL_DB))
        out = Path(folder) / f"remix-{n + 1}"
        out.mkdir(parents=True, exist_ok=True)
        # b from `shift` to its end, then its start up to `shift`: the same sounds, at other times
        graph = (
            f"[0:a]{mono}[a];[1:a]{mono}[b1];[2:a]{mono}[b2];[b1][b2]concat=n=2:v=0:a=1,"
            f"volume={gain:.3f}dB[b];[a][b]amix=inputs=2:duration=first:normalize=0[out]"
        )
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", a_file]
        cmd += ["-ss", f"{shift:.3f}", "-i", b_file, "-t", f"{shift:.3f}", "-i", b_file]
        cmd += ["-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_s16le", str(out / "audio.wav")]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise AudioError(f"{a.path} + {b.path}: could not remix them ({reason})")
        Labels([(0.0, a.runs[0].label)]).save(out / "labels.json")
        yield Remix(AudioDirectory(out), a.path, b.path, shift, b.duration)


def _mean_dbfs(levels: np.ndarray) -> float:
    """Return the level (dBFS) of the mean power of windows at `levels` dBFS (0 for none)."""
    finite = levels[np.isfinite(levels)]
    return float(10 * np.log10(np.mean(10 ** (finite / 10)))) if finite.size else 0.0


def save_calibration(model_dir: str | os.PathLike[str], calibration: Calibration) -> None:
    """Store the calibrated settings under "detector" (and a summary under "calibration")."""
    from micmon.model import Model

    Model.update_metadata(
        model_dir, detector=calibration.settings.to_dict(), calibration=calibration.to_dict()
    )


# -- plots ---------------------------------------------------------------------------------------
_TRUTH_ALPHA = 0.18
_PLOT_DPI = 100


def plot_recording(
    report: RecordingReport,
    path: str | os.PathLike[str],
    *,
    settings: DetectorSettings | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of each label's score over time, labelled runs shaded, detections marked."""
    plt = pyplot(headless=True)
    rec = report.scores
    centres = rec.times + rec.window_seconds / 2
    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=_PLOT_DPI)
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        targets = report.metrics.targets
        for i, label in enumerate(rec.labels):
            colour = colours[i % len(colours)]
            ax.plot(centres, rec.scores[:, i], lw=1.0, color=colour, label=label)
            if label not in targets:
                continue
            for run in rec.runs:
                if run.label == label:
                    ax.axvspan(run.start, run.end, color=colour, alpha=_TRUTH_ALPHA, lw=0)
            for d in report.detections:
                if d.label == label:
                    ax.hlines(1.04, d.start, d.end, color=colour, lw=4)
                    ax.plot([d.reported], [1.04], marker="v", color="black", ms=5)
            if settings is not None:
                ax.axhline(settings.threshold_for(label), color=colour, ls="--", lw=0.8)
        m = report.metrics
        recall = "n/a" if m.event_recall is None else f"{m.event_recall:.2f}"
        ax.set_title(
            f"{title or rec.name}: event recall {recall} ({m.found}/{m.runs}), "
            f"{m.false_alarms} false alarm(s); shaded = labelled, bars = detected"
        )
        ax.set_xlabel("time (s)")
        ax.set_ylabel("score")
        ax.set_ylim(-0.02, 1.1)
        ax.set_xlim(0, rec.duration)
        ax.legend(loc="upper right", fontsize="small")
        return save_png(fig, path)
    finally:
        plt.close(fig)


def plot_tradeoff(
    points: Sequence[TradeoffPoint],
    path: str | os.PathLike[str],
    *,
    chosen: TradeoffPoint | None = None,
    max_false_alarms_per_hour: float | None = None,
) -> Path:
    """Write a PNG of event recall against false alarms per hour for the settings tried."""
    plt = pyplot(headless=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=_PLOT_DPI)
    try:
        x = [p.false_alarms_per_hour for p in points]
        y = [p.event_recall for p in points]
        ax.scatter(x, y, s=10, alpha=0.5, label="settings tried")
        front: list[TradeoffPoint] = []
        for p in sorted(points, key=lambda p: (p.false_alarms_per_hour, -p.event_recall)):
            if not front or p.event_recall > front[-1].event_recall:
                front.append(p)
        ax.step(
            [p.false_alarms_per_hour for p in front],
            [p.event_recall for p in front],
            where="post",
            color="black",
            lw=1,
            label="best recall",
        )
        if max_false_alarms_per_hour is not None:
            ax.axvline(max_false_alarms_per_hour, color="red", ls="--", lw=0.8, label="budget")
        if chosen is not None:
            ax.scatter(
                [chosen.false_alarms_per_hour],
                [chosen.event_recall],
                s=80,
                facecolors="none",
                edgecolors="red",
                label="chosen",
            )
        ax.set_xlabel("false alarms per hour")
        ax.set_ylabel("event recall")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right", fontsize="small")
        return save_png(fig, path)
    finally:
        plt.close(fig)


def threshold_sweep(
    recordings: Sequence[RecordingScores],
    settings: DetectorSettings,
    *,
    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
) -> list[TradeoffPoint]:
    """Return the trade-off of `settings` with every watched label at each threshold."""
    targets = detector_targets(recordings[0].labels, settings)
    out = []
    for threshold in thresholds:
        s = settings.with_(thresholds={label: float(threshold) for label in targets}, targets=tuple(targets))
        total = evaluate_scores(recordings, s).overall
        out.append(
            TradeoffPoint(
                dict(s.thresholds),
                s.k,
                s.n,
                s.m,
                total.found,
                total.runs,
                total.false_alarms,
                total.hours,
                total.median_delay,
            )
        )
    return out


def plot_report(
    report: EvaluationReport, out_dir: str | os.PathLike[str], *, calibration: Calibration | None = None
) -> list[Path]:
    """Write one score PNG per recording and a trade-off PNG into `out_dir`; return their paths."""
    out = Path(out_dir)
    names = display_names([r.scores for r in report.recordings])
    written = [
        plot_recording(r, out / f"{_safe(name)}.png", settings=report.settings, title=name)
        for r, name in zip(report.recordings, names, strict=True)
    ]
    if calibration is not None:
        written.append(
            plot_tradeoff(
                calibration.points,
                out / "tradeoff.png",
                chosen=calibration.chosen,
                max_false_alarms_per_hour=calibration.max_false_alarms_per_hour,
            )
        )
    else:
        points = threshold_sweep([r.scores for r in report.recordings], report.settings)
        written.append(plot_tradeoff(points, out / "tradeoff.png"))
    return written


def display_names(recordings: Sequence[RecordingScores]) -> list[str]:
    """Return a distinct short name per recording: its folder name, or its path below the
    common folder when folder names repeat (e.g. easy/rec_01 and hard/rec_01)."""
    names = [r.name for r in recordings]
    if len(set(names)) == len(names):
        return names
    root = os.path.commonpath([r.path for r in recordings]) if len(recordings) > 1 else ""
    return [os.path.relpath(r.path, root) if root else r.path for r in recordings]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "recording"
