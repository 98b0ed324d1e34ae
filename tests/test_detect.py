"""Detector: scores per window -> start/end events."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from micmon.detect import (
    DEFAULT_HOP_FRACTION,
    Detector,
    DetectorSettings,
    Event,
    detect,
    detections,
    model_hop,
    model_settings,
)
from micmon.errors import ParameterError

LABELS = ("negative", "positive")
ORIGIN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _ends(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "end"]


def _scores(pos: list[float]) -> np.ndarray:
    p = np.asarray(pos, dtype=np.float64)
    return np.stack([1 - p, p], axis=1)


def _run(
    pos: list[float],
    settings: DetectorSettings | None = None,
    *,
    window: float = 1.0,
    hop: float | None = None,
    levels: list[float] | None = None,
) -> list[Event]:
    hop_s = window if hop is None else hop
    times = np.arange(len(pos)) * hop_s
    return detect(
        _scores(pos),
        times,
        LABELS,
        settings,
        window_seconds=window,
        hop_seconds=hop,
        levels_dbfs=levels,
        origin=ORIGIN,
    )


def test_single_event_start_end_and_stats() -> None:
    events = _run([0.1, 0.9, 0.8, 0.2, 0.1])
    assert [(e.kind, e.label) for e in events] == [("start", "positive"), ("end", "positive")]
    start, end = events
    assert start.start == 1.0 and start.end is None and start.confidence == pytest.approx(0.9)
    assert end.start == 1.0 and end.end == 3.0
    assert end.peak == pytest.approx(0.9) and end.mean == pytest.approx(0.85)
    assert end.windows == 2
    data = json.loads(end.to_json())
    assert data["event"] == "end" and data["label"] == "positive"
    assert data["start"] == "2026-01-02T03:04:06.000+00:00"
    assert data["end"] == "2026-01-02T03:04:08.000+00:00"
    assert data["time"] == data["end"] and data["duration"] == 2.0


def test_background_label_is_not_a_target_by_default() -> None:
    events = _run([0.0, 0.0, 0.0])  # negative scores 1.0 all along
    assert events == []


def test_k_of_n_needs_enough_hits() -> None:
    settings = DetectorSettings(k=2, n=3)
    assert _run([0.9, 0.1, 0.1, 0.9, 0.1, 0.1], settings) == []
    events = _run([0.9, 0.1, 0.9, 0.1, 0.1], settings)
    assert [e.kind for e in events] == ["start", "end"]
    # The event starts at the first hit among the k, not at the window that completed the count.
    assert events[0].start == 0.0 and events[1].end == 3.0


def test_m_windows_below_to_end() -> None:
    settings = DetectorSettings(m=3)
    events = _run([0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1], settings)
    assert [e.kind for e in events] == ["start", "end"]
    assert events[1].end == 4.0 and events[1].windows == 2


def test_min_event_length_holds_the_start_back_and_drops_short_events() -> None:
    settings = DetectorSettings(min_event_seconds=2.5)
    assert _run([0.9, 0.9, 0.1, 0.1], settings) == []
    events = _run([0.1, 0.9, 0.9, 0.9, 0.1], settings)
    assert [e.kind for e in events] == ["start", "end"]
    assert events[0].start == 1.0 and events[0].windows == 3


def test_cooldown_suppresses_a_quick_second_event() -> None:
    pos = [0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1]
    assert len(_ends(_run(pos))) == 3
    events = _ends(_run(pos, DetectorSettings(cooldown_seconds=2.0)))
    assert [(e.start, e.end) for e in events] == [(0.0, 1.0), (6.0, 7.0)]


def test_loudness_gate_counts_quiet_windows_as_background() -> None:
    settings = DetectorSettings(min_dbfs=-40.0)
    levels = [-20.0, -60.0, -20.0, -20.0]
    events = _ends(_run([0.9, 0.9, 0.9, 0.1], settings, levels=levels))
    assert [(e.start, e.end) for e in events] == [(0.0, 1.0), (2.0, 3.0)]
    detector = Detector(LABELS, settings, window_seconds=1.0)
    assert detector.gated(-60.0) and not detector.gated(-20.0) and not detector.gated(None)
    assert detector.update(None, time=0.0, level_dbfs=-60.0) == []
    with pytest.raises(ParameterError, match="min_dbfs"):
        detector.update(None, time=1.0, level_dbfs=-10.0)


def test_overlapping_windows_stand_for_their_central_hop() -> None:
    # window 2 s, hop 0.5 s: window i covers [0.5 i, 0.5 i + 2], its central slice is
    # [0.5 i + 0.75, 0.5 i + 1.25].
    events = _run([0.0, 0.9, 0.9, 0.0, 0.0], window=2.0, hop=0.5)
    end = _ends(events)[0]
    assert (end.start, end.end) == (1.25, 2.25)


def test_per_label_thresholds_and_targets() -> None:
    labels = ("negative", "cry", "bark")
    scores = np.array([[0.2, 0.6, 0.2], [0.1, 0.2, 0.7], [1.0, 0.0, 0.0]])
    times = [0.0, 1.0, 2.0]
    events = detect(
        scores, times, labels, DetectorSettings(thresholds={"cry": 0.5, "bark": 0.8}), window_seconds=1.0
    )
    assert [(e.kind, e.label) for e in events] == [("start", "cry"), ("end", "cry")]
    events = detect(scores, times, labels, DetectorSettings(threshold=0.5), window_seconds=1.0)
    assert {e.label for e in events} == {"cry", "bark"}
    events = detect(scores, times, labels, DetectorSettings(targets=("bark",)), window_seconds=1.0)
    assert {e.label for e in events} == {"bark"}


def test_finish_closes_open_events_and_reset_forgets() -> None:
    detector = Detector(LABELS, window_seconds=1.0, origin=ORIGIN)
    assert [e.kind for e in detector.process(_scores([0.1, 0.9, 0.9]), [0, 1, 2])] == ["start"]
    assert set(detector.active) == {"positive"}
    (end,) = detector.finish()
    assert (end.kind, end.start, end.end) == ("end", 1.0, 3.0)
    assert detector.active == {}
    detector.update(_scores([0.9])[0], time=3.0)
    detector.reset()
    assert detector.active == {} and detector.finish() == []
    detector.update(_scores([0.1])[0], time=0.0)  # time may restart after reset()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_do_not_depend_on_chunking(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos = np.clip(np.repeat(rng.random(60) > 0.7, 4) * 0.8 + rng.normal(0, 0.15, 240), 0, 1)
    scores, times = _scores(list(pos)), np.arange(240) * 0.25
    settings = DetectorSettings(threshold=0.6, k=2, n=3, m=2, min_event_seconds=0.5, cooldown_seconds=1.0)
    reference = detect(scores, times, LABELS, settings, window_seconds=1.0, hop_seconds=0.25, origin=ORIGIN)
    assert len(reference) >= 4
    detector = Detector(LABELS, settings, window_seconds=1.0, hop_seconds=0.25, origin=ORIGIN)
    chunked: list[Event] = []
    i = 0
    while i < len(times):
        size = int(rng.integers(1, 17))
        chunked += detector.process(scores[i : i + size], times[i : i + size])
        i += size
    chunked += detector.finish()
    assert chunked == reference


def test_settings_round_trip() -> None:
    settings = DetectorSettings(thresholds={"positive": 0.7}, k=2, n=4, m=3, min_dbfs=-50.0)
    assert DetectorSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 0.0}, "threshold: must be a score in"),
        ({"threshold": 1.5}, "threshold: must be a score in"),
        ({"thresholds": {"positive": "high"}}, "thresholds.positive"),
        ({"k": 0}, "k: must be an integer"),
        ({"k": 3, "n": 2}, "k: 3 windows"),
        ({"m": 1.5}, "m: must be an integer"),
        ({"min_event_seconds": -1}, "min_event_seconds"),
        ({"cooldown_seconds": float("nan")}, "cooldown_seconds"),
        ({"min_dbfs": 3}, "min_dbfs"),
    ],
)
def test_bad_settings(changes: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        DetectorSettings(**changes)


def test_bad_detector_inputs() -> None:
    with pytest.raises(ParameterError, match="unknown label 'cry'"):
        Detector(LABELS, DetectorSettings(thresholds={"cry": 0.5}), window_seconds=1.0)
    with pytest.raises(ParameterError, match="background label"):
        Detector(("negative",), window_seconds=1.0)
    with pytest.raises(ParameterError, match="hop_seconds"):
        Detector(LABELS, window_seconds=1.0, hop_seconds=2.0)
    detector = Detector(LABELS, window_seconds=1.0)
    with pytest.raises(ParameterError, match="3 values per window"):
        detector.update([0.1, 0.2, 0.7], time=0.0)
    detector.update([0.1, 0.9], time=5.0)
    with pytest.raises(ParameterError, match="in order"):
        detector.update([0.1, 0.9], time=4.0)


# -- the settings a model folder implies -------------------------------------------------------------
LABELS3 = ["cry", "negative", "alarm"]


def test_model_settings_reads_the_calibration() -> None:
    # every label but the background ones
    assert Detector(LABELS3, model_settings({}, LABELS3), window_seconds=1.0).targets == ("cry", "alarm")
    stored = DetectorSettings(threshold=0.8, k=2, n=3).to_dict()
    assert model_settings({"detector": stored}, LABELS3).k == 2


def test_explicit_threshold_beats_calibrated_thresholds() -> None:
    calibrated = DetectorSettings(thresholds={"cry": 0.3, "alarm": 0.4}, k=2, n=3).to_dict()
    settings = model_settings({"detector": calibrated}, LABELS3, overrides={"threshold": 0.9})
    detector = Detector(LABELS3, settings, window_seconds=1.0)
    assert detector.thresholds == {"cry": 0.9, "alarm": 0.9}
    assert (settings.k, settings.n) == (2, 3)  # what was not given explicitly stays calibrated
    explicit = model_settings(
        {"detector": calibrated}, LABELS3, overrides={"threshold": 0.9, "thresholds": {"cry": 0.6}, "k": None}
    )
    assert Detector(LABELS3, explicit, window_seconds=1.0).thresholds == {"cry": 0.6}


def test_background_label_from_training_metadata() -> None:
    meta = {"training": {"background_label": "cry"}}
    assert model_settings(meta, LABELS3).targets == ("negative", "alarm")
    assert model_settings(meta, LABELS3, background_label="negative").targets == ("cry", "alarm")


def test_model_hop_rule() -> None:
    assert model_hop({}, 2.0) == 2.0 * DEFAULT_HOP_FRACTION
    assert model_hop({"calibration": {"hop_seconds": 1.0}}, 2.0) == 1.0
    assert model_hop({"calibration": {"hop_seconds": 1.0}}, 2.0, 0.25) == 0.25
    with pytest.raises(ParameterError, match="hop: seconds between window starts must be > 0 and at most"):
        model_hop({}, 2.0, 3.0)


def test_detections_pair_each_event_with_its_report_time() -> None:
    scores = np.array([[0.1, 0.9]] * 3 + [[0.9, 0.1]] * 2)
    found = detections(scores, np.arange(5) * 0.5, ["negative", "alarm"], window_seconds=1.0, hop_seconds=0.5)
    assert len(found) == 1
    assert found[0].label == "alarm"
    assert found[0].reported == pytest.approx(1.0)  # the end of the first window above
    assert found[0].event.kind == "end"


def test_hysteresis_keeps_one_long_sound_one_event() -> None:
    # A long sound whose score dips to 0.4 twice: below the 0.6 threshold, above 0.5 x 0.6.
    scores = [0.1, 0.9, 0.8, 0.4, 0.9, 0.4, 0.4, 0.85, 0.9, 0.1, 0.1]
    rows = np.array([[1 - s, s] for s in scores])
    times = np.arange(len(scores)) * 1.0
    flicker = detect(rows, times, ["negative", "alarm"], DetectorSettings(threshold=0.6), window_seconds=1.0)
    held = detect(
        rows, times, ["negative", "alarm"], DetectorSettings(threshold=0.6, hold=0.5), window_seconds=1.0
    )
    assert len(_ends(flicker)) == 3  # start, end, start, end, start, end
    assert [(e.kind, e.start, e.end) for e in held] == [("start", 1.0, None), ("end", 1.0, 9.0)]
    with pytest.raises(ParameterError, match=r"hold: must be a share of the threshold in \(0, 1\]"):
        DetectorSettings(hold=0.0)


def test_digital_silence_and_near_silence_never_start_an_event() -> None:
    from micmon.detect import SILENCE_DBFS

    # A model that is sure of "positive" on a muted microphone: silence is still background.
    sure = [0.99] * 6
    assert _run(sure, levels=[float("-inf")] * 6) == []
    assert _run(sure, levels=[SILENCE_DBFS - 5] * 6) == []
    assert len(_run(sure, levels=[SILENCE_DBFS + 5] * 6)) == 2  # quiet but real sound: scored
    # The floor is a setting, on by default; None scores silence like any window.
    assert DetectorSettings().silence_dbfs == SILENCE_DBFS
    assert len(_run(sure, DetectorSettings(silence_dbfs=None), levels=[float("-inf")] * 6)) == 2
    with pytest.raises(ParameterError, match="silence_dbfs: must be a level in dBFS <= 0"):
        DetectorSettings(silence_dbfs=3.0)
    assert DetectorSettings.from_dict(DetectorSettings().to_dict()) == DetectorSettings()
