"""micmon.evaluate: replay labelled recordings through windows -> scores -> Detector, count events."""

from __future__ import annotations

import json
import wave
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from micmon.detect import Detection, DetectorSettings, Event
from micmon.errors import AudioError, ParameterError
from micmon.evaluate import (
    RecordingScores,
    calibrate,
    close_calls,
    display_names,
    evaluate,
    evaluate_scores,
    label_runs,
    measure,
    plot_report,
    score_recording,
)
from micmon.features import FeatureSpec
from micmon.labels import LabelSegment, format_time

RATE = 16000
BEEP_HZ = 3000.0
SPEC = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, feature="logmel")
LABELS = ("negative", "positive")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- generated audio -------------------------------------------------------------------------------
def write_recording(
    folder: Path,
    *,
    seconds: float,
    beeps: list[tuple[float, float]],
    labelled: list[tuple[float, float]],
    seed: int = 0,
) -> Path:
    """Write folder/audio.wav (noise, 3 kHz beeps at `beeps`) and labels.json (`labelled` positive)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = 0.02 * rng.standard_normal(n) + 0.01 * np.sin(2 * np.pi * 50 * t)
    for start, end in beeps:
        on = (t >= start) & (t < end)
        x[on] += 0.3 * np.sin(2 * np.pi * BEEP_HZ * t[on])
    folder.mkdir(parents=True, exist_ok=True)
    with wave.open(str(folder / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    labels = {format_time(0): "negative"}
    for start, end in labelled:
        labels[format_time(start)] = "positive"
        labels[format_time(end)] = "negative"
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


class BeepScorer:
    """A stand-in model: the share of a window's power near 3 kHz is its 'positive' score."""

    labels = LABELS
    spec = SPEC
    metadata: dict = {}

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float64) / 32768.0
        power = np.abs(np.fft.rfft(x, axis=1)) ** 2
        freqs = np.fft.rfftfreq(x.shape[1], 1.0 / RATE)
        near = (freqs > BEEP_HZ - 100) & (freqs < BEEP_HZ + 100)
        share = power[:, near].sum(axis=1) / power.sum(axis=1)
        positive = np.clip(share * 1.2, 0.0, 1.0)
        return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def known_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 60 s recording: a detected event, a missed (silent) event, and an unlabelled beep."""
    root = tmp_path_factory.mktemp("evaluate")
    write_recording(
        root / "rec1",
        seconds=60.0,
        beeps=[(10.0, 16.0), (40.0, 41.0)],  # 40-41 s is not labelled: a false alarm
        labelled=[(10.0, 16.0), (25.0, 31.0)],
    )  # 25-31 s has no beep: missed
    return root


# -- pure metrics ----------------------------------------------------------------------------------
def _scores(
    duration: float,
    hop: float,
    window: float,
    high: list[tuple[float, float]],
    runs: list[tuple[float, float]],
) -> RecordingScores:
    times = np.arange(0.0, duration - window + 1e-9, hop)
    centre = times + window / 2
    positive = np.where([any(a <= c < b for a, b in high) for c in centre], 0.9, 0.1)
    segs = [LabelSegment(0.0, None, "negative")]
    for a, b in runs:
        segs += [LabelSegment(a, None, "positive"), LabelSegment(b, None, "negative")]
    ends = [s.start for s in segs[1:]] + [None]
    segs = [LabelSegment(s.start, e, s.label) for s, e in zip(segs, ends, strict=True)]
    truth = ["positive" if any(a <= c < b for a, b in runs) else "negative" for c in centre]
    return RecordingScores(
        "synthetic",
        "/nowhere",
        LABELS,
        window,
        hop,
        duration,
        times,
        np.stack([1 - positive, positive], axis=1),
        np.full(len(times), -20.0),
        truth,
        label_runs(segs, duration),
    )


def test_close_calls_name_the_loudest_moments_outside_the_labelled_events() -> None:
    rec = _scores(100.0, 0.5, 1.0, high=[(10, 20), (70, 74)], runs=[(10, 20)])
    centre = rec.times + 0.5
    lookalike = (centre >= 50) & (centre < 51)  # below the threshold: held it up, raised nothing
    rec.scores[lookalike] = [0.4, 0.6]
    hiss = int(np.argmin(abs(centre - 85.5)))  # the highest of all, but below the loudness gate
    rec.scores[hiss] = [0.01, 0.99]
    rec.levels[hiss] = -90.0
    report = evaluate_scores([rec], DetectorSettings(threshold=0.8, min_dbfs=-60.0))
    calls = close_calls(report, limit=3)
    assert [round(c.score, 2) for c in calls] == [0.9, 0.6, 0.1]
    loud, quiet = calls[0], calls[1]
    # one moment per sound: its windows from the first to the last scoring half its peak or more
    assert (loud.start, loud.end, loud.alarm) == (69.5, 74.0, True)
    assert (quiet.start, quiet.end, quiet.alarm) == (49.5, 51.0, False)
    assert loud.label == "positive" and loud.threshold == 0.8 and loud.recording == "synthetic"
    assert report.overall.false_alarms == 1  # the one alarm close_calls marks
    # the labelled event scores as high as the lookalike but is not a close call
    assert not any(c.start < 20 and c.end > 10 for c in calls)
    assert loud.to_dict()["alarm"] is True and quiet.to_dict()["start"] == 49.5


def test_label_runs_merges_and_clips() -> None:
    segs = [LabelSegment(0, 5, "a"), LabelSegment(5, 8, "a"), LabelSegment(8, 20, "b")]
    assert label_runs(segs, 12.0) == [LabelSegment(0, 8, "a"), LabelSegment(8, 12.0, "b")]


def test_measure_counts_found_missed_and_false_alarms() -> None:
    rec = _scores(100.0, 1.0, 2.0, high=[(10, 20), (70, 74)], runs=[(10, 20), (40, 50)])
    report = evaluate_scores([rec], DetectorSettings(threshold=0.5))
    m = report.overall
    assert (m.runs, m.found, m.false_alarms, m.detected) == (2, 1, 1, 2)
    assert m.event_recall == 0.5
    assert m.false_alarms_per_hour == pytest.approx(36.0)
    # the first window whose centre is in the run starts at 9 s and is reported when it ends
    assert m.median_delay == pytest.approx(1.0)
    assert m.window_accuracy == pytest.approx(1 - 14 / len(rec.times), abs=0.02)
    per = m.per_label()
    assert per["positive"]["recall"] == pytest.approx(0.5, abs=0.1)
    assert 0 < per["positive"]["f1"] < 1


def test_measure_delay_is_never_negative() -> None:
    rec = _scores(30.0, 1.0, 2.0, high=[(5, 20)], runs=[(8, 20)])
    event = Event(
        kind="end",
        label="positive",
        start=5.0,
        end=20.0,
        confidence=0.9,
        peak=0.9,
        mean=0.9,
        windows=10,
        origin=datetime(2000, 1, 1, tzinfo=timezone.utc),
    )
    m = measure(rec, [Detection(event, reported=6.0)], ("positive",))
    assert m.found == 1 and m.delays == [0.0] and m.false_alarms == 0


def test_calibration_meets_its_budget_and_prefers_recall() -> None:
    # a long negative stretch with short score blips (false alarms at k=1) and two real events
    rec = _scores(
        3600.0,
        1.0,
        2.0,
        high=[(100, 110), (200, 210), (500, 501), (900, 901), (1500, 1501)],
        runs=[(100, 110), (200, 210)],
    )
    loose = evaluate_scores([rec], DetectorSettings()).overall
    assert loose.false_alarms == 3
    cal = calibrate([rec], max_false_alarms_per_hour=1.0)
    assert cal.met_budget
    assert cal.chosen.false_alarms_per_hour <= 1.0
    assert cal.chosen.event_recall == 1.0
    again = evaluate_scores([rec], cal.settings).overall
    assert again.false_alarms <= 1 and again.found == 2
    assert cal.pareto()[0].false_alarms_per_hour <= cal.pareto()[-1].false_alarms_per_hour
    stored = cal.to_dict()
    assert stored["met_budget"] is True and stored["tradeoff"]


def test_remixed_hours_are_calibrated_on_but_do_not_vouch_for_the_budget() -> None:
    from micmon.evaluate import false_alarm_bound

    rec = _scores(1800.0, 1.0, 2.0, high=[(100, 110)], runs=[(100, 110)])
    room = _scores(3600.0, 1.0, 2.0, high=[], runs=[])
    remix = _scores(3600.0, 1.0, 2.0, high=[(700, 701)], runs=[])  # a lookalike only the remix has
    alone = calibrate([rec, room], max_false_alarms_per_hour=1.0)
    both = calibrate([rec, room], max_false_alarms_per_hour=1.0, remixed=[remix])
    assert (both.recordings, both.remixes) == (2, 1) and both.chosen.hours == pytest.approx(2.5)
    assert both.remixed_hours == pytest.approx(1.0) and both.recorded_hours == pytest.approx(1.5)
    # the remix's alarm counts, its hour does not: 1.5 recorded hours vouch as they do alone
    assert both.false_alarm_bound == pytest.approx(false_alarm_bound(both.chosen.false_alarms, 1.5))
    assert alone.false_alarm_bound == pytest.approx(false_alarm_bound(alone.chosen.false_alarms, 1.5))
    assert both.to_dict()["remixed_hours"] == 1.0 and alone.to_dict()["remixed_hours"] == 0.0
    assert alone.remixed_hours == 0.0 and alone.recorded_hours == pytest.approx(1.5)


def test_calibration_counts_the_events_each_threshold_rests_on() -> None:
    from micmon.evaluate import MIN_CALIBRATION_EVENTS

    one = _scores(600.0, 1.0, 2.0, high=[(100, 110)], runs=[(100, 110)])
    room = _scores(600.0, 1.0, 2.0, high=[], runs=[])
    thin = calibrate([one, room], max_false_alarms_per_hour=1.0)
    assert thin.events == {"positive": 1} and thin.thin_labels == {"positive": 1}
    assert thin.to_dict()["events"] == {"positive": 1}
    runs = [(100.0 * i, 100.0 * i + 10) for i in range(1, MIN_CALIBRATION_EVENTS + 1)]
    enough = _scores(600.0, 1.0, 2.0, high=runs, runs=runs)
    # remixes of the room hold no events: they add hours, not events
    both = calibrate([enough, room], max_false_alarms_per_hour=1.0, remixed=[room])
    assert both.events == {"positive": MIN_CALIBRATION_EVENTS} and both.thin_labels == {}


def test_calibration_says_when_a_label_needs_the_highest_threshold_tried() -> None:
    rec = _scores(1800.0, 1.0, 2.0, high=[(100, 110), (300, 310)], runs=[(100, 110), (300, 310)])
    rec.scores[rec.truth == np.array("positive")] = [0.0001, 0.9999]  # the events score 0.9999 ...
    clear = calibrate([rec], max_false_alarms_per_hour=0.0)
    assert clear.topped_labels == []  # nothing else comes near
    lookalike = (rec.times >= 1000) & (rec.times < 1003)  # ... and so nearly does a lookalike
    rec.scores[lookalike] = [0.009, 0.991]
    topped = calibrate([rec], max_false_alarms_per_hour=0.0)
    assert topped.met_budget and topped.chosen.event_recall == 1.0
    assert topped.top_threshold == 0.995 and topped.settings.thresholds == {"positive": 0.995}
    assert topped.topped_labels == ["positive"]
    # the highest of the thresholds the search was given, whichever they are
    wider = calibrate([rec], max_false_alarms_per_hour=0.0, thresholds=(0.5, 0.995, 0.998, 0.9995))
    assert wider.top_threshold == 0.9995 and wider.settings.thresholds == {"positive": 0.998}
    assert wider.topped_labels == []  # room above the lookalike: the middle of 0.995-0.9995


def test_display_names_stay_distinct() -> None:
    from dataclasses import replace

    rec = _scores(10.0, 1.0, 2.0, high=[], runs=[])
    a = replace(rec, name="rec_01", path="/corpus/test/easy/rec_01")
    b = replace(rec, name="rec_01", path="/corpus/test/hard/rec_01")
    c = replace(rec, name="quiet", path="/corpus/test/quiet")
    assert display_names([a, c]) == ["rec_01", "quiet"]
    assert display_names([a, b, c]) == ["easy/rec_01", "hard/rec_01", "quiet"]


def test_calibration_rejects_bad_budget() -> None:
    rec = _scores(60.0, 1.0, 2.0, high=[], runs=[])
    with pytest.raises(ParameterError, match="max_false_alarms_per_hour"):
        calibrate([rec], max_false_alarms_per_hour=-1)


# -- through real audio (ffmpeg windows, Detector) -------------------------------------------------
def test_evaluate_known_events_by_number(known_events: Path) -> None:
    report = evaluate(known_events, BeepScorer(), settings=DetectorSettings(threshold=0.5), hop=0.5)
    m = report.overall
    assert (m.runs, m.found, m.runs - m.found, m.false_alarms) == (2, 1, 1, 1)
    assert m.detected == 2
    rec = report.recordings[0]
    assert rec.scores.duration == pytest.approx(60.0, abs=0.1)
    found = [d for d in rec.detections if d.start < 16 and d.end > 10]
    assert len(found) == 1 and 0 < found[0].reported - 10.0 <= 2.0
    assert m.worst_delay is not None and m.worst_delay <= 2.0
    json.dumps(report.to_dict())


def test_calibration_on_recordings_meets_budget(known_events: Path) -> None:
    rec = score_recording(known_events / "rec1", BeepScorer(), hop=0.5)
    # 60 s of audio: any false alarm is 60/h, so a budget of 30/h means none at all
    cal = calibrate([rec], max_false_alarms_per_hour=30.0)
    assert cal.met_budget
    m = evaluate_scores([rec], cal.settings).overall
    assert (m.false_alarms, m.found, m.runs) == (0, 1, 2)  # the silent event stays missed
    assert cal.chosen.false_alarms_per_hour == m.false_alarms_per_hour == 0.0


def test_score_recording_needs_labels(tmp_path: Path) -> None:
    folder = write_recording(tmp_path / "rec", seconds=3.0, beeps=[], labelled=[])
    (folder / "labels.json").unlink()
    with pytest.raises(AudioError, match="labels.json"):
        score_recording(folder, BeepScorer())


def test_score_recording_rejects_bad_hop(known_events: Path) -> None:
    with pytest.raises(ParameterError, match="hop"):
        score_recording(known_events / "rec1", BeepScorer(), hop=5.0)


def test_plots_are_pngs(known_events: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rec = score_recording(known_events / "rec1", BeepScorer(), hop=0.5)
    report = evaluate_scores([rec], DetectorSettings())
    cal = calibrate(
        [rec], max_false_alarms_per_hour=100.0, thresholds=(0.5, 0.9), kn=((1, 1),), m_values=(1,)
    )
    paths = plot_report(report, tmp_path / "plots", calibration=cal)
    assert [p.name for p in paths] == ["rec1.png", "tradeoff.png"]
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_false_alarm_bounds_say_how_much_audio_vouches_for_a_rate() -> None:
    from micmon.evaluate import false_alarm_bound, hours_to_vouch

    assert false_alarm_bound(0, 0.5) == pytest.approx(5.99, abs=0.01)  # 0 in 0.5 h: < 6 per hour
    assert false_alarm_bound(0, 3.0) == pytest.approx(0.9986, abs=0.001)
    assert false_alarm_bound(2, 2.0) == pytest.approx(3.148, abs=0.01)  # 6.296 / 2
    assert hours_to_vouch(1.0) == pytest.approx(2.996, abs=0.001)
    assert false_alarm_bound(0, 0.0) == float("inf")


def test_calibration_takes_the_middle_of_the_thresholds_the_audio_cannot_tell_apart() -> None:
    # two events scoring 1.0 and nothing else: every threshold finds both without a false alarm;
    # the middle one keeps a margin both ways (quieter events, louder lookalikes), whatever the delay
    rec = _scores(600.0, 1.0, 2.0, high=[(100, 110), (200, 210)], runs=[(100, 110), (200, 210)])
    grid = (0.3, 0.5, 0.6, 0.8, 0.9)
    cal = calibrate([rec], max_false_alarms_per_hour=1.0, thresholds=grid, kn=((1, 1),))
    assert cal.met_budget and cal.chosen.event_recall == 1.0
    assert cal.settings.thresholds == {"positive": 0.6}
    strict = calibrate([rec], max_false_alarms_per_hour=1.0, thresholds=grid, kn=((1, 1),), prefer="strict")
    loose = calibrate([rec], max_false_alarms_per_hour=1.0, thresholds=grid, kn=((1, 1),), prefer="loose")
    assert strict.settings.thresholds == {"positive": 0.9}
    assert loose.settings.thresholds == {"positive": 0.3}
    with pytest.raises(ParameterError, match="prefer"):
        calibrate([rec], max_false_alarms_per_hour=1.0, prefer="median")


def test_calibration_clear_keeps_the_threshold_above_the_rooms_nearest_lookalike() -> None:
    # every threshold finds both events with 2 of 2 windows and no false alarm; the room recording
    # (where the sound never plays) has one window at 0.55, a lookalike one window short of an alarm
    events = _scores(600.0, 1.0, 2.0, high=[(100, 110), (200, 210)], runs=[(100, 110), (200, 210)])
    events.scores[300] = (0.3, 0.7)  # a lone window in the events' own recording: not the room's
    room = _scores(600.0, 1.0, 2.0, high=[], runs=[])
    room.scores[50] = (0.45, 0.55)
    grid, kn = (0.3, 0.5, 0.6, 0.8, 0.9), ((2, 2),)
    middle = calibrate([events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn)
    clear = calibrate([events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear")
    assert middle.settings.thresholds == {"positive": 0.6}
    assert clear.met_budget and clear.chosen.event_recall == 1.0
    assert clear.settings.thresholds == {"positive": 0.8}  # the middle of 0.6, 0.8, 0.9
    edge = calibrate(
        [events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear-loose"
    )
    assert edge.met_budget and edge.settings.thresholds == {"positive": 0.6}  # the lowest above 0.55
    room.scores[50] = (0.65, 0.35)  # a fainter lookalike: "clear-loose" goes down to just above it
    edge = calibrate(
        [events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear-loose"
    )
    loose = calibrate([events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="loose")
    assert edge.settings.thresholds == {"positive": 0.5} and loose.settings.thresholds == {"positive": 0.3}
    room.scores[50] = (0.45, 0.55)
    # remixed room audio counts as room too
    remix = _scores(600.0, 1.0, 2.0, high=[], runs=[])
    remix.scores[70] = (0.15, 0.85)
    remixed = calibrate(
        [events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear", remixed=[remix]
    )
    assert remixed.settings.thresholds == {"positive": 0.9}
    # a lookalike above every threshold leaves nothing clear of it: the middle, as by default
    room.scores[50] = (0.05, 0.95)
    loud = calibrate([events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear")
    assert loud.settings.thresholds == {"positive": 0.6}
    loud_edge = calibrate(
        [events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="clear-loose"
    )
    assert loud_edge.settings.thresholds == {"positive": 0.6}


def test_calibration_auto_loosens_a_one_label_detector_and_keeps_the_middle_for_several() -> None:
    # the room's nearest lookalike scores 0.35: one label watched, "auto" is "clear-loose" (0.5, the
    # lowest threshold above it); a second label watched too, "auto" is the middle (0.6), as by default
    events = _scores(600.0, 1.0, 2.0, high=[(100, 110), (200, 210)], runs=[(100, 110), (200, 210)])
    room = _scores(600.0, 1.0, 2.0, high=[], runs=[])
    room.scores[50] = (0.65, 0.35)
    grid, kn = (0.3, 0.5, 0.6, 0.8, 0.9), ((2, 2),)
    one = calibrate([events, room], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="auto")
    assert one.met_budget and one.chosen.event_recall == 1.0
    assert one.settings.thresholds == {"positive": 0.5}
    # no room heard (every recording holds the sound): nothing to be clear of, the middle
    alone = calibrate([events], max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="auto")
    assert alone.settings.thresholds == {"positive": 0.6}

    def with_alarm(rec: RecordingScores) -> RecordingScores:
        scores = np.column_stack([rec.scores, np.zeros(len(rec.times))])
        return replace(rec, labels=(*LABELS, "alarm"), scores=scores)

    three = [with_alarm(events), with_alarm(room)]
    several = calibrate(three, max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn, prefer="auto")
    middle = calibrate(three, max_false_alarms_per_hour=1.0, thresholds=grid, kn=kn)
    assert several.settings.thresholds == middle.settings.thresholds
    assert set(several.settings.targets) == {"positive", "alarm"}
    assert several.settings.thresholds["positive"] == 0.6


def test_calibration_middle_is_taken_among_settings_within_the_budget_only() -> None:
    # a blip at 0.55 one hour in: thresholds 0.3 and 0.5 raise it (over a 0-per-hour budget), so
    # the range the audio cannot tell apart is 0.6-0.9 and its middle is 0.8
    rec = _scores(3600.0, 1.0, 2.0, high=[(100, 110)], runs=[(100, 110)])
    rec.scores[1800:1803, 1] = 0.55
    rec.scores[1800:1803, 0] = 0.45
    grid = (0.3, 0.5, 0.6, 0.8, 0.9)
    cal = calibrate([rec], max_false_alarms_per_hour=0.0, thresholds=grid, kn=((1, 1),))
    assert cal.met_budget and cal.chosen.false_alarms == 0 and cal.chosen.event_recall == 1.0
    assert cal.settings.thresholds == {"positive": 0.8}


class FeatureScorer:
    """A stand-in model that scores feature arrays (as `Model.scores` does) and notes its thread."""

    labels = LABELS
    spec = SPEC
    metadata: dict = {}

    def __init__(self, fail_after: int | None = None) -> None:
        self.threads: set[str] = set()
        self.calls = 0
        self.fail_after = fail_after

    def scores(self, features: np.ndarray) -> np.ndarray:
        import threading

        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("scorer broke")
        level = np.asarray(features, dtype=np.float64).mean(axis=(1, 2))
        return np.stack([1.0 - level, level], axis=1).astype(np.float32)


def test_scoring_runs_beside_the_reader_in_order_whatever_the_batch(known_events: Path) -> None:
    import threading

    whole = score_recording(known_events / "rec1", FeatureScorer(), hop=0.25, batch_size=10_000)
    seen: list[np.ndarray] = []
    scorer = FeatureScorer()
    batched = score_recording(
        known_events / "rec1", scorer, hop=0.25, batch_size=3, on_scores=lambda t, s: seen.append(t)
    )
    assert threading.current_thread().name not in scorer.threads  # the model runs in a worker
    assert scorer.calls == -(-len(whole.times) // 3)
    np.testing.assert_allclose(batched.scores, whole.scores, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate(seen), whole.times)  # batches reported in order
    with pytest.raises(RuntimeError, match="scorer broke"):  # a worker's error reaches the caller
        score_recording(known_events / "rec1", FeatureScorer(fail_after=4), hop=0.25, batch_size=3)


def test_background_folders_match_the_fallback_labels_whatever_the_case(tmp_path: Path) -> None:
    from micmon.evaluate import calibration_folders

    for name, label in (("room", "Negative"), ("talk", "negative"), ("baby", "cry")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "audio.wav").write_bytes(b"")
        (tmp_path / name / "labels.json").write_text(json.dumps({"00:00": label}))
    # a model without micmon's training metadata: the detector's fallback list, as it matches it
    found = calibration_folders(None, tmp_path)
    assert sorted(Path(d.path).name for d in found) == ["room", "talk"]
    # a model micmon trained names its background label: that label exactly
    trained = {"training": {"background_label": "negative"}}
    assert [Path(d.path).name for d in calibration_folders(trained, tmp_path)] == ["talk"]


# -- remixed room audio ----------------------------------------------------------------------------
def _quiet_scores(
    folder: Path, seconds: float, *, label: str = "negative", dbfs: float = -20.0
) -> RecordingScores:
    """Scores of a recording labelled all `label`, each window at `dbfs` (what the remix reads)."""
    times = np.arange(0.0, seconds - 1.0, 0.5)
    return RecordingScores(
        name=folder.name,
        path=str(folder),
        labels=LABELS,
        window_seconds=1.0,
        hop_seconds=0.5,
        duration=seconds,
        times=times,
        scores=np.zeros((len(times), 2)),
        levels=np.full(len(times), dbfs),
        truth=[label] * len(times),
        runs=[LabelSegment(0.0, seconds, label)],
    )


def _tone_level(x: np.ndarray, hz: float, rate: int) -> float:
    """Amplitude of the `hz` component of `x` (a windowed DFT bin)."""
    n = np.arange(len(x))
    return float(
        2
        * abs(np.sum(x * np.hanning(len(x)) * np.exp(-2j * np.pi * hz * n / rate)))
        / np.sum(np.hanning(len(x)))
    )


def test_remixed_background_hears_the_second_recording_shifted_and_quieter(tmp_path: Path) -> None:
    from helpers import encode
    from micmon.audio import AudioDirectory
    from micmon.evaluate import REMIX_LEVEL_DB, remix_background

    t = np.arange(20 * RATE) / RATE
    encode(tmp_path / "a" / "audio.flac", 0.3 * np.sin(2 * np.pi * 440 * t), RATE)
    b = np.zeros(12 * RATE)
    b[: 2 * RATE] = 0.3 * np.sin(2 * np.pi * 1000 * t[: 2 * RATE])  # a 2 s tone, then silence
    encode(tmp_path / "b" / "audio.wav", b, RATE)
    event = tmp_path / "ev"
    encode(event / "audio.wav", b, RATE)
    recs = [_quiet_scores(tmp_path / "a", 20.0), _quiet_scores(tmp_path / "b", 12.0)]
    recs.append(_quiet_scores(event, 12.0, label="positive"))  # not background: never remixed

    made = list(remix_background(recs, tmp_path / "mix", sample_rate=RATE, seed=3))
    assert [Path(m.directory.path).parent for m in made] == [tmp_path / "mix"]
    remix = made[0]
    assert (remix.first, remix.second, remix.second_duration) == (recs[0].path, recs[1].path, 12.0)
    mix = remix.directory
    assert mix.labels is not None and mix.labels.names == ["negative"]
    with wave.open(mix.audio_file) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, RATE)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0
    assert abs(len(x) / RATE - 20.0) < 0.05  # as long as the first recording
    # the first recording is all there; the second's tone is somewhere else than at its start,
    # 3-12 dB below its own level (the two recordings' windows are equally loud)
    seconds = [x[i * RATE : (i + 1) * RATE] for i in range(20)]
    assert all(abs(_tone_level(s, 440, RATE) - 0.3) < 0.02 for s in seconds)
    tone = [_tone_level(s, 1000, RATE) for s in seconds]
    loud = [i for i, v in enumerate(tone) if v > 0.02]
    assert loud and 0 not in loud and loud == list(range(loud[0], loud[0] + len(loud)))
    gain_db = 20 * np.log10(max(tone) / 0.3)
    assert REMIX_LEVEL_DB[0] - 0.5 <= gain_db <= REMIX_LEVEL_DB[1] + 0.5
    # where the mix hears the second recording: its tone (its first 2 s) where the remix says
    for i in loud:
        at = remix.second_time(i + 0.5)
        assert at is not None and at < 2.5
    assert remix.second_time(12.5) is None  # the second has ended: the first alone
    # the same seed remixes the same way
    again = list(remix_background(recs, tmp_path / "again", sample_rate=RATE, seed=3))
    assert Path(again[0].directory.audio_file).read_bytes() == Path(mix.audio_file).read_bytes()
    assert isinstance(again[0].directory, AudioDirectory) and again[0].shift == remix.shift


def test_close_calls_in_a_remix_name_both_recordings_and_where_to_listen(tmp_path: Path) -> None:
    from helpers import encode
    from micmon.evaluate import remix_background

    rng = np.random.default_rng(2)
    encode(tmp_path / "a" / "audio.wav", 0.1 * rng.standard_normal(20 * RATE), RATE)
    encode(tmp_path / "b" / "audio.wav", 0.1 * rng.standard_normal(12 * RATE), RATE)
    recs = [_quiet_scores(tmp_path / "a", 20.0), _quiet_scores(tmp_path / "b", 12.0)]
    (remix,) = remix_background(recs, tmp_path / "mix", sample_rate=RATE, seed=1)
    mixed = _quiet_scores(Path(remix.directory.path), 20.0)
    mixed.scores[mixed.times == 4.0] = [0.3, 0.7]  # a lookalike while both are heard ...
    mixed.scores[mixed.times == 15.0] = [0.1, 0.9]  # ... and after the second ended: a alone, heard already
    report = evaluate_scores([*recs, mixed], DetectorSettings(threshold=0.8))
    calls = close_calls(report, limit=2, remixes=[remix])
    top = calls[0]
    assert (top.recording, top.path, top.start, top.score) == ("a", recs[0].path, 4.0, 0.7)
    assert (top.mixed_with, top.mixed_with_path) == ("b", recs[1].path)
    assert top.mixed_at == pytest.approx((4.0 + remix.shift) % 12.0)
    assert (top.to_dict()["mixed_with"], top.to_dict()["mixed_with_path"]) == ("b", recs[1].path)
    assert not any(c.start >= 12.0 and c.mixed_with for c in calls)
    # without the remixes named, the mix is a recording of its own, as any other
    plain = close_calls(report, limit=1)[0]
    assert (plain.recording, plain.score, plain.mixed_with) == ("remix-1", 0.9, None)
    assert "mixed_with" not in plain.to_dict()


def test_remixed_background_mixes_one_recording_with_itself_and_caps_the_pairs(tmp_path: Path) -> None:
    from helpers import encode
    from micmon.evaluate import remix_background

    rng = np.random.default_rng(0)
    for name in "abcde":
        encode(tmp_path / name / "audio.wav", 0.1 * rng.standard_normal(3 * RATE), RATE)
    one = list(remix_background([_quiet_scores(tmp_path / "a", 3.0)], tmp_path / "one", sample_rate=RATE))
    assert len(one) == 1
    five = [_quiet_scores(tmp_path / n, 3.0) for n in "abcde"]  # 10 pairs
    assert len(list(remix_background(five, tmp_path / "five", sample_rate=RATE, pairs=4))) == 4
    assert not list(
        remix_background(
            [_quiet_scores(tmp_path / "a", 3.0, label="positive")], tmp_path / "x", sample_rate=RATE
        )
    )


def test_remixes_can_be_made_one_at_a_time(tmp_path: Path) -> None:
    import shutil

    from helpers import encode
    from micmon.evaluate import remix_background

    rng = np.random.default_rng(1)
    for name in "abc":
        encode(tmp_path / name / "audio.wav", 0.1 * rng.standard_normal(3 * RATE), RATE)
    recs = [_quiet_scores(tmp_path / n, 3.0) for n in "abc"]
    whole = [m.directory for m in remix_background(recs, tmp_path / "whole", sample_rate=RATE)]
    seen = []
    for remix in remix_background(recs, tmp_path / "lazy", sample_rate=RATE):
        mix = remix.directory  # only the mix just made is on disk: the one before it was deleted
        assert [p.name for p in (tmp_path / "lazy").iterdir()] == [Path(mix.path).name]
        seen.append(Path(mix.audio_file).read_bytes())
        shutil.rmtree(mix.path)
    assert len(seen) == len(whole) == 3  # every pair of three, the same mixes as all at once
    for lazy, made in zip(seen, whole, strict=True):
        assert lazy == Path(made.audio_file).read_bytes()


def constant_model(spec: FeatureSpec, labels: list[str], first: float) -> object:
    """A real network (Keras, savable to .tflite) that scores every window `first` for labels[0]."""
    import keras

    from micmon.model import Model

    bias = np.zeros(len(labels), dtype=np.float32)
    bias[0] = np.log(first * (len(labels) - 1) / (1 - first))  # softmax: labels[0] gets `first`
    layers = [
        keras.Input(shape=spec.shape),
        keras.layers.Flatten(),
        keras.layers.Dense(len(labels), activation="softmax", kernel_initializer="zeros"),
    ]
    model = Model(layers, labels, spec=spec)
    dense = model.keras_model.layers[-1]
    dense.set_weights([dense.get_weights()[0], bias])
    return model


def test_the_quiet_room_check_names_labels_a_nights_hiss_could_set_off() -> None:
    from micmon.evaluate import quiet_room_risks, quiet_room_scores

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    model = constant_model(spec, ["applause", "negative"], 0.88)
    tops = quiet_room_scores(model, DetectorSettings(threshold=0.9))
    assert list(tops) == ["applause"] and tops["applause"] == pytest.approx(0.88, abs=1e-3)
    assert quiet_room_risks(tops, DetectorSettings(threshold=0.9)) == {"applause": (tops["applause"], 0.9)}
    # a threshold the hiss stays more than the margin below (0.995 - 0.1 > 0.88) is safe
    assert quiet_room_risks(tops, DetectorSettings(thresholds={"applause": 0.995})) == {}
    # windows the loudness gate skips are not heard: the generated room is -85 to -45 dBFS
    assert quiet_room_scores(model, DetectorSettings(min_dbfs=-40.0)) == {"applause": 0.0}
    quiet_model = constant_model(spec, ["applause", "negative"], 0.05)
    assert quiet_room_risks(quiet_room_scores(quiet_model, DetectorSettings()), DetectorSettings()) == {}
