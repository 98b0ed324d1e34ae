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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from micmon._plot import pyplot, save_png
from micmon.audio import AudioDirectory, AudioFile, probe_duration
from micmon.detect import Detector, DetectorSettings, Event
from micmon.errors import AudioError, LabelsError, ModelError, ParameterError
from micmon.features import FeatureSpec
from micmon.labels import Labels, LabelSegment

#: Windows scored per call to the model.
SCORE_BATCH = 256
#: Thresholds tried by `calibrate`.
CALIBRATION_THRESHOLDS: tuple[float, ...] = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
#: (k, n) pairs tried by `calibrate`: an event starts when k of the last n windows are above.
CALIBRATION_KN: tuple[tuple[int, int], ...] = (
    (1, 1), (2, 2), (2, 3), (3, 3), (3, 4), (3, 5), (4, 6))
#: m values tried by `calibrate`: an event ends after m windows below.
CALIBRATION_M: tuple[int, ...] = (1, 2, 4)
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


def score_recording(recording: str | os.PathLike[str] | AudioDirectory, model: Scorer, *,
                    hop: float | None = None, batch_size: int = SCORE_BATCH,
                    ffmpeg_bin: str = "ffmpeg") -> RecordingScores:
    """Score every window of a labelled sample folder as `monitor` would (windows every `hop` s).

    `hop` defaults to the model's feature spec hop (the window length unless the spec sets one).
    Raises AudioError when the folder has no labels.json or is shorter than one window.
    """
    directory = recording if isinstance(recording, AudioDirectory) else AudioDirectory(recording)
    labels = directory.labels
    if labels is None:
        raise AudioError(f"{directory.path}: no labels.json; evaluation needs labelled recordings "
                         "(write one with `micmon label`)")
    spec = model.spec
    if spec is None:
        raise ModelError("the model has no feature spec; train it (or load a saved one) first")
    check_labels_known(labels, model.labels, where=directory.labels_file or directory.path)
    hop = spec.hop if hop is None else float(hop)
    if not 0 < hop <= spec.window_seconds:
        raise ParameterError(f"hop: must be > 0 and <= the model's window "
                             f"({spec.window_seconds:g} s), got {hop!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size: must be a positive integer, got {batch_size!r}")
    times: list[float] = []
    truth: list[str | None] = []
    levels: list[float] = []
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            chunks.append(np.asarray(model.predict_proba(np.stack(batch)), dtype=np.float32))
            batch.clear()

    with AudioFile(directory, sample_duration=spec.window_seconds, sample_rate=spec.sample_rate,
                   channels=spec.channels, hop=hop, ffmpeg_bin=ffmpeg_bin) as source:
        for segment in source:
            times.append(segment.start)
            truth.append(segment.label)
            levels.append(segment.dbfs)
            batch.append(segment.audio)
            if len(batch) >= batch_size:
                flush()
        flush()
    if not times:
        raise AudioError(f"{directory.audio_file}: shorter than one {spec.window_seconds:g} s "
                         "window; nothing to evaluate")
    duration = probe_duration(directory.audio_file, ffmpeg_bin=ffmpeg_bin)
    duration = max(duration, times[-1] + spec.window_seconds) if math.isfinite(duration) else (
        times[-1] + spec.window_seconds)
    return RecordingScores(
        name=directory.name, path=directory.path, labels=tuple(model.labels),
        window_seconds=spec.window_seconds, hop_seconds=hop, duration=duration,
        times=np.asarray(times, dtype=np.float64), scores=np.concatenate(chunks),
        levels=np.asarray(levels, dtype=np.float64), truth=truth,
        runs=label_runs(labels.segments(duration), duration))


def check_labels_known(labels: Labels, model_labels: Sequence[str], *, where: str) -> None:
    """Raise LabelsError when a recording uses labels the model was not trained on.

    Windows of an unknown label have no right answer: every detection in them would be counted
    as a false alarm (and calibration would tune on that), so the report would be wrong.
    """
    unknown = [name for name in labels.names if name not in model_labels]
    if unknown:
        raise LabelsError(f"{where}: label(s) {', '.join(map(repr, unknown))} unknown to the model "
                          f"(it knows {', '.join(model_labels)}); their windows would count as "
                          "false alarms. Relabel them with the model's labels, or evaluate a model "
                          "trained on them")


def score_directory(audio_dir: str | os.PathLike[str], model: Scorer, *, hop: float | None = None,
                    ffmpeg_bin: str = "ffmpeg",
                    progress: Callable[[AudioDirectory], None] | None = None,
                    ) -> list[RecordingScores]:
    """Score every labelled sample folder at or below `audio_dir`."""
    folders = AudioDirectory.scan(audio_dir)
    if not folders:
        raise AudioError(f"{audio_dir}: no labelled sample folders (audio.* + labels.json) at or "
                         "below it")
    out = []
    for folder in folders:
        if progress is not None:
            progress(folder)
        out.append(score_recording(folder, model, hop=hop, ffmpeg_bin=ffmpeg_bin))
    return out


# -- detection -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    """A complete detected event and when the monitor would have reported its start."""

    label: str
    start: float
    end: float
    reported: float
    peak: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"label": self.label, "start": round(self.start, 3), "end": round(self.end, 3),
                "reported": round(self.reported, 3), "peak": round(self.peak, 4)}


def detect_recording(rec: RecordingScores, settings: DetectorSettings) -> list[Detection]:
    """Replay a scored recording through a `Detector`; return its complete events."""
    detector = Detector(rec.labels, settings, window_seconds=rec.window_seconds,
                        hop_seconds=rec.hop_seconds, origin=_ORIGIN)
    reported: dict[str, float] = {}
    out: list[Detection] = []

    def collect(events: list[Event], now: float) -> None:
        for event in events:
            if event.kind == "start":
                reported[event.label] = now
            else:
                out.append(Detection(event.label, event.start, float(event.end or event.start),
                                     reported.pop(event.label, now), event.peak))

    gate = settings.min_dbfs is not None or settings.silence_dbfs is not None
    for t, row, level in zip(rec.times, rec.scores, rec.levels, strict=True):
        quiet = gate and detector.gated(float(level))
        events = detector.update(None if quiet else row, time=float(t),
                                 level_dbfs=float(level) if gate else None)
        if events:
            collect(events, float(t) + rec.window_seconds)
    last = float(rec.times[-1]) + rec.window_seconds if len(rec.times) else 0.0
    collect(detector.finish(), last)
    return out


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
            raise ParameterError(f"labels: cannot add metrics of {other.labels} to {self.labels}")
        return Metrics(self.labels, self.targets, self.confusion + other.confusion,
                       self.seconds + other.seconds, self.runs + other.runs,
                       self.found + other.found, self.detected + other.detected,
                       self.false_alarms + other.false_alarms, self.delays + other.delays)

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
        out: dict[str, dict[str, float | int | None]] = {}
        for i, label in enumerate(self.labels):
            tp = float(self.confusion[i, i])
            predicted = float(self.confusion[:, i].sum())
            support = int(self.confusion[i, :].sum())
            precision = tp / predicted if predicted else None
            recall = tp / support if support else None
            f1 = (2 * precision * recall / (precision + recall)
                  if precision and recall else (0.0 if support or predicted else None))
            out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        return out

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
            "windows": self.windows, "window_accuracy": _round(self.window_accuracy),
            "labels": {label: {name: _round(v) for name, v in d.items()}
                       for label, d in self.per_label().items()},
            "targets": list(self.targets), "seconds": round(self.seconds, 3),
            "events": self.runs, "found": self.found, "missed": self.runs - self.found,
            "event_recall": _round(self.event_recall), "detected": self.detected,
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": _round(self.false_alarms_per_hour),
            "median_delay": _round(self.median_delay), "worst_delay": _round(self.worst_delay),
        }


def _round(value: float | int | None, digits: int = 4) -> float | int | None:
    return round(value, digits) if isinstance(value, float) else value


def _overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start < b_end and b_start < a_end


def measure(rec: RecordingScores, detections: Sequence[Detection],
            targets: Sequence[str]) -> Metrics:
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
        spans = [(r.start, r.end if r.end is not None else rec.duration) for r in runs]
        metrics.false_alarms += sum(
            1 for d in mine if not any(_overlaps(d.start, d.end, a, b) for a, b in spans))
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
        return {"name": self.scores.name, "path": self.scores.path,
                "duration": round(self.scores.duration, 3), **self.metrics.to_dict(),
                "detections": [d.to_dict() for d in self.detections]}


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
        return {"detector": self.settings.to_dict(), "hop_seconds": self.hop_seconds,
                "targets": list(self.targets), "overall": self.overall.to_dict(),
                "recordings": [r.to_dict() for r in self.recordings]}


def detector_targets(labels: Sequence[str], settings: DetectorSettings) -> tuple[str, ...]:
    """Return the labels a Detector with these settings watches."""
    return Detector(labels, settings, window_seconds=1.0).targets


def evaluate_scores(recordings: Sequence[RecordingScores],
                    settings: DetectorSettings | None = None) -> EvaluationReport:
    """Run the detector over scored recordings and measure every recording and the total."""
    if not recordings:
        raise ParameterError("recordings: nothing to evaluate; pass at least one scored recording")
    settings = settings or DetectorSettings()
    labels = recordings[0].labels
    targets = detector_targets(labels, settings)
    reports = []
    for rec in recordings:
        if rec.labels != labels:
            raise ParameterError(f"recordings: {rec.name} was scored with labels {rec.labels}, "
                                 f"the others with {labels}")
        detections = detect_recording(rec, settings)
        reports.append(RecordingReport(rec, detections, measure(rec, detections, targets)))
    overall = reports[0].metrics
    for r in reports[1:]:
        overall = overall + r.metrics
    return EvaluationReport(reports, overall, settings, targets, recordings[0].hop_seconds)


def model_settings(metadata: Mapping[str, Any] | None,
                   default: DetectorSettings | None = None) -> DetectorSettings:
    """Return the detector settings stored in a model's micmon.json, else `default`."""
    stored = (metadata or {}).get("detector")
    if isinstance(stored, Mapping) and stored:
        try:
            return DetectorSettings.from_dict(stored)
        except (ParameterError, TypeError) as exc:
            raise ModelError(f"micmon.json: 'detector' settings are invalid ({exc}); run "
                             "`micmon evaluate --calibrate` again") from None
    return default or DetectorSettings()


def evaluate(audio_dir: str | os.PathLike[str], model: Scorer, *,
             settings: DetectorSettings | None = None, hop: float | None = None,
             ffmpeg_bin: str = "ffmpeg") -> EvaluationReport:
    """Score and measure every labelled recording under `audio_dir` (settings: the model's)."""
    if settings is None:
        settings = model_settings(getattr(model, "metadata", None))
    recordings = score_directory(audio_dir, model, hop=hop, ffmpeg_bin=ffmpeg_bin)
    return evaluate_scores(recordings, settings)


# -- held-out recordings ---------------------------------------------------------------------------
def holdout_recordings(datasets: Sequence[Any], count: int, *, seed: int | None = 0
                       ) -> tuple[list[Any], list[Any]]:
    """Split per-recording datasets into (to fit, held out): `count` whole recordings set aside.

    Held-out recordings are for `calibrate`: detector settings tuned on audio the network was
    fitted on look better than they are. At least one recording always stays for fitting.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ParameterError(f"holdout_recordings: must be an integer >= 0, got {count!r}")
    if count and count >= len(datasets):
        raise ParameterError(f"holdout_recordings: {count} of {len(datasets)} recordings would "
                             "leave none to train on; hold out fewer or record more")
    order = np.random.default_rng(seed).permutation(len(datasets))
    held = set(order[:count].tolist())
    return ([d for i, d in enumerate(datasets) if i not in held],
            [d for i, d in enumerate(datasets) if i in held])


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
        if any(len(s) <= len(parts) and parts[len(parts) - len(s):] == s for s in suffixes):
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
        return {"thresholds": dict(self.thresholds), "k": self.k, "n": self.n, "m": self.m,
                "event_recall": round(self.event_recall, 4),
                "false_alarms_per_hour": round(self.false_alarms_per_hour, 4),
                "median_delay": _round(self.median_delay)}


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

    def pareto(self) -> list[TradeoffPoint]:
        """Return the best recall reachable at each false-alarm rate, by rising rate."""
        best: list[TradeoffPoint] = []
        for p in sorted(self.points, key=lambda p: (p.false_alarms_per_hour, -p.event_recall)):
            if not best or p.event_recall > best[-1].event_recall:
                best.append(p)
        return best

    def to_dict(self) -> dict[str, Any]:
        """Return what is stored beside the settings in micmon.json (no per-point detail)."""
        return {"max_false_alarms_per_hour": self.max_false_alarms_per_hour,
                "met_budget": self.met_budget, "hop_seconds": self.hop_seconds,
                "recordings": self.recordings, "hours": round(self.chosen.hours, 4),
                "event_recall": round(self.chosen.event_recall, 4),
                "false_alarms_per_hour": round(self.chosen.false_alarms_per_hour, 4),
                "median_delay": _round(self.chosen.median_delay),
                "tradeoff": [p.to_dict() for p in self.pareto()]}


#: (threshold, runs found, runs, false alarms, delays) of one setting for one label
_Row = tuple[float, int, int, int, list[float]]


def calibrate(recordings: Sequence[RecordingScores], *, max_false_alarms_per_hour: float,
              base: DetectorSettings | None = None,
              thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
              kn: Sequence[tuple[int, int]] = CALIBRATION_KN,
              m_values: Sequence[int] = CALIBRATION_M) -> Calibration:
    """Search threshold per label, K of N and M for the best event recall within the budget.

    The budget is shared equally by the watched labels; ties go to fewer false alarms, then the
    shorter median delay, then the higher threshold. When no setting meets the budget the one
    with the fewest false alarms is returned with ``met_budget=False``. Other settings
    (min_dbfs, min_event_seconds, cooldown_seconds, targets) are kept from `base`.
    """
    if not recordings:
        raise ParameterError("recordings: calibration needs at least one scored recording")
    if not isinstance(max_false_alarms_per_hour, (int, float)) or max_false_alarms_per_hour < 0 \
            or not math.isfinite(max_false_alarms_per_hour):
        raise ParameterError(f"max_false_alarms_per_hour: must be a number >= 0, got "
                             f"{max_false_alarms_per_hour!r}")
    if not thresholds or not kn or not m_values:
        raise ParameterError("thresholds/kn/m_values: each needs at least one value to try")
    base = base or DetectorSettings()
    labels = recordings[0].labels
    targets = detector_targets(labels, base)
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
                s = base.with_(thresholds={label: float(threshold)}, targets=(label,), k=k, n=n,
                               m=m)
                total = evaluate_scores(recordings, s).overall
                rows.append((float(threshold), total.found, total.runs, total.false_alarms,
                             total.delays))
            per_label[label] = rows
        table[(k, n, m)] = per_label

    def pick(rows: list[_Row], budget: float) -> tuple[_Row, bool]:
        ok = [r for r in rows if r[3] <= budget * hours + 1e-9]
        if ok:
            return min(ok, key=lambda r: (-r[1], r[3], _median(r[4]), -r[0])), True
        return min(rows, key=lambda r: (r[3], -r[1], -r[0])), False

    points: list[TradeoffPoint] = []
    candidates: list[tuple[TradeoffPoint, bool]] = []
    for (k, n, m), per_label in table.items():
        # every single-threshold point (all labels at the same threshold) for the trade-off curve
        for i, threshold in enumerate(thresholds):
            rows = [per_label[label][i] for label in targets]
            points.append(TradeoffPoint({label: float(threshold) for label in targets}, k, n, m,
                                        sum(r[1] for r in rows), sum(r[2] for r in rows),
                                        sum(r[3] for r in rows), hours,
                                        _median([d for r in rows for d in r[4]])))
        chosen = {label: pick(rows, share) for label, rows in per_label.items()}
        rows = [c[0] for c in chosen.values()]
        candidates.append((TradeoffPoint(
            {label: c[0][0] for label, c in chosen.items()}, k, n, m,
            sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows), hours,
            _median([d for r in rows for d in r[4]])), all(c[1] for c in chosen.values())))
    within = [c for c, ok in candidates if ok]
    if within:
        best = min(within, key=lambda p: (-p.found, p.false_alarms, _median_key(p), p.n, p.m))
    else:
        best = min((c for c, _ in candidates), key=lambda p: (p.false_alarms, -p.found, p.n))
    settings = base.with_(thresholds=dict(best.thresholds), targets=tuple(targets), k=best.k,
                          n=best.n, m=best.m)
    return Calibration(settings, best, bool(within), float(max_false_alarms_per_hour), points,
                       recordings[0].hop_seconds, len(recordings))


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.inf


def _median_key(p: TradeoffPoint) -> float:
    return math.inf if p.median_delay is None else p.median_delay


def save_calibration(model_dir: str | os.PathLike[str], calibration: Calibration) -> None:
    """Store the calibrated settings under "detector" (and a summary under "calibration")."""
    from micmon.model import Model

    Model.update_metadata(model_dir, detector=calibration.settings.to_dict(),
                          calibration=calibration.to_dict())


# -- plots ---------------------------------------------------------------------------------------
_TRUTH_ALPHA = 0.18
_PLOT_DPI = 100


def plot_recording(report: RecordingReport, path: str | os.PathLike[str], *,
                   settings: DetectorSettings | None = None, title: str | None = None) -> Path:
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
                threshold = settings.thresholds.get(label, settings.threshold)
                ax.axhline(threshold, color=colour, ls="--", lw=0.8)
        m = report.metrics
        recall = "n/a" if m.event_recall is None else f"{m.event_recall:.2f}"
        ax.set_title(f"{title or rec.name}: event recall {recall} ({m.found}/{m.runs}), "
                     f"{m.false_alarms} false alarm(s); shaded = labelled, bars = detected")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("score")
        ax.set_ylim(-0.02, 1.1)
        ax.set_xlim(0, rec.duration)
        ax.legend(loc="upper right", fontsize="small")
        return save_png(fig, path)
    finally:
        plt.close(fig)


def plot_tradeoff(points: Sequence[TradeoffPoint], path: str | os.PathLike[str], *,
                  chosen: TradeoffPoint | None = None,
                  max_false_alarms_per_hour: float | None = None) -> Path:
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
        ax.step([p.false_alarms_per_hour for p in front], [p.event_recall for p in front],
                where="post", color="black", lw=1, label="best recall")
        if max_false_alarms_per_hour is not None:
            ax.axvline(max_false_alarms_per_hour, color="red", ls="--", lw=0.8, label="budget")
        if chosen is not None:
            ax.scatter([chosen.false_alarms_per_hour], [chosen.event_recall], s=80,
                       facecolors="none", edgecolors="red", label="chosen")
        ax.set_xlabel("false alarms per hour")
        ax.set_ylabel("event recall")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right", fontsize="small")
        return save_png(fig, path)
    finally:
        plt.close(fig)



def threshold_sweep(recordings: Sequence[RecordingScores], settings: DetectorSettings, *,
                    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS) -> list[TradeoffPoint]:
    """Return the trade-off of `settings` with every watched label at each threshold."""
    targets = detector_targets(recordings[0].labels, settings)
    out = []
    for threshold in thresholds:
        s = settings.with_(thresholds={label: float(threshold) for label in targets},
                           targets=tuple(targets))
        total = evaluate_scores(recordings, s).overall
        out.append(TradeoffPoint(dict(s.thresholds), s.k, s.n, s.m, total.found, total.runs,
                                 total.false_alarms, total.hours, total.median_delay))
    return out


def plot_report(report: EvaluationReport, out_dir: str | os.PathLike[str], *,
                calibration: Calibration | None = None) -> list[Path]:
    """Write one score PNG per recording and a trade-off PNG into `out_dir`; return their paths."""
    out = Path(out_dir)
    names = display_names([r.scores for r in report.recordings])
    written = [plot_recording(r, out / f"{_safe(name)}.png", settings=report.settings, title=name)
               for r, name in zip(report.recordings, names, strict=True)]
    if calibration is not None:
        written.append(plot_tradeoff(calibration.points, out / "tradeoff.png",
                                     chosen=calibration.chosen,
                                     max_false_alarms_per_hour=calibration.max_false_alarms_per_hour))
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
