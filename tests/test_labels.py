"""micmon.labels: times, labels.json validation (messages name the file and key), window labelling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from micmon.errors import LabelsError, MicmonError, ParameterError
from micmon.labels import Labels, find_labels_file, format_time, load_labels, parse_time


# -- parse_time / format_time ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("75", 75.0),  # plain seconds may exceed 59
        ("01:30", 90.0),
        ("1:30", 90.0),
        ("01:02:03", 3723.0),
        ("00:01.5", 1.5),  # pitfall 9: a fraction, not 5 ms
        ("00:01.05", 1.05),
        ("00:01.005", 1.005),
        ("00:00:01.250", 1.25),
        ("2.5", 2.5),
        (" 00:10 ", 10.0),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_parse_time_accepts_the_documented_forms(text: str | float, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds, abs=1e-9)


def test_parse_time_fraction_is_a_decimal_fraction_not_milliseconds() -> None:
    assert parse_time("00:01.5") == pytest.approx(1.5)
    assert parse_time("00:01.5") != pytest.approx(1.005)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "is not a time"),
        ("1:2:3:4", "is not a time"),
        ("00:61", "seconds must be < 60"),
        ("01:60:00", "minutes must be < 60"),
        ("-5", "is not a time"),
        (-1.0, "non-negative"),
        (float("nan"), "finite"),
        (True, "expected seconds"),
        ([1], "expected seconds"),
    ],
)
def test_parse_time_rejects_bad_values_naming_the_parameter(value: object, fragment: str) -> None:
    with pytest.raises(ParameterError, match="start") as info:
        parse_time(value, name="start")  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize("seconds", [0.0, 1.5, 59.999, 61.25, 599.0, 3600.0, 3723.125, 7322.5])
def test_format_time_round_trips_through_parse_time(seconds: float) -> None:
    text = format_time(seconds)
    assert parse_time(text) == pytest.approx(seconds, abs=5e-4)


def test_format_time_shapes() -> None:
    assert format_time(90) == "01:30"
    assert format_time(1.5) == "00:01.500"
    assert format_time(3723.125) == "01:02:03.125"
    assert format_time(1.5, millis=False) == "00:01"


# -- Labels.load errors ------------------------------------------------------------------------------
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ({"00:00": "negative", "00:7x": "positive"}, ["'00:7x'", "is not a time"]),
        (
            {"00:00": "negative", "1:00": "positive", "01:00": "negative"},
            ["'01:00'", "the same time as key '1:00'"],
        ),
        ({"00:00": "negative", "60": "positive", "01:00.000": "x"}, ["'01:00.000'", "same time"]),
        ({"00:00": "negative", "00:05": 3}, ["'00:05'", "non-empty string", "3"]),
        ({"00:00": "negative", "00:05": ""}, ["'00:05'", "non-empty string"]),
        ({"00:00": None}, ["'00:00'", "non-empty string", "None"]),
    ],
)
def test_load_rejects_bad_entries_naming_file_and_key(
    tmp_path: Path, content: dict[str, object], fragments: list[str]
) -> None:
    path = _write(tmp_path, json.dumps(content))
    with pytest.raises(LabelsError) as info:
        Labels.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_load_rejects_the_same_key_written_twice(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"00:00": "negative", "00:10": "positive", "00:10": "negative"}')
    with pytest.raises(LabelsError, match="'00:10'"):
        Labels.load(path)


def test_load_rejects_invalid_json_with_position(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"00:00": "negative",\n "00:05" "positive"}')
    with pytest.raises(LabelsError, match="invalid JSON at line 2") as info:
        Labels.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_an_empty_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "{}")
    with pytest.raises(LabelsError, match="no labels") as info:
        Labels.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_a_json_list(tmp_path: Path) -> None:
    path = _write(tmp_path, '["negative"]')
    with pytest.raises(LabelsError, match="expected a JSON object.*got list"):
        Labels.load(path)


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "labels.json"
    with pytest.raises(LabelsError, match="no such labels file") as info:
        load_labels(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, MicmonError)


def test_load_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path, json.dumps({"00:00": "negative", "00:02.5": "positive"}))
    labels = Labels.load("~/labels.json")
    assert labels.starts == [0.0, 2.5]


def test_find_labels_file(tmp_path: Path) -> None:
    assert find_labels_file(tmp_path) is None
    path = _write(tmp_path, '{"0": "a"}')
    assert find_labels_file(tmp_path) == path


# -- lookup ------------------------------------------------------------------------------------------
def test_entries_are_sorted_and_labels_stripped() -> None:
    labels = Labels({"00:10": " positive ", "00:00": "negative", "00:01.5": "negative"})
    assert list(labels) == [(0.0, "negative"), (1.5, "negative"), (10.0, "positive")]
    assert labels.names == ["negative", "positive"]
    assert len(labels) == 3


def test_label_at() -> None:
    labels = Labels({"00:05": "negative", "00:10": "positive"})
    assert labels.label_at(0.0) is None
    assert labels.label_at(5.0) == "negative"
    assert labels.label_at(9.999) == "negative"
    assert labels.label_at(10.0) == "positive"
    assert labels.label_at(1000.0) == "positive"


def test_label_for_takes_the_label_covering_most_of_the_window() -> None:
    # Pitfall 10: the original took the label at the window's start.
    labels = Labels({"00:00": "negative", "00:09.5": "positive", "00:20": "negative"})
    assert labels.label_for(8.0, 10.0) == "negative"  # 1.5 s negative, 0.5 s positive
    assert labels.label_for(9.0, 11.0) == "positive"  # starts negative, 1.5 s positive
    assert labels.label_for(19.5, 21.5) == "negative"  # starts positive, 1.5 s negative
    assert labels.label_for(12.0, 14.0) == "positive"


def test_label_for_mostly_unlabelled_window_is_none() -> None:
    labels = Labels({"00:01.5": "positive"})
    assert labels.label_for(0.0, 2.0) is None  # 1.5 s before the first key
    assert labels.label_for(0.5, 2.5) == "positive"  # 1 s each: a tie goes to the label


def test_label_for_three_labels_in_one_window() -> None:
    labels = Labels({"0": "a", "1": "b", "1.8": "c", "2.0": "a"})
    # [0.5, 2.5): a 0.5 + 0.5 = 1.0, b 0.8, c 0.2
    assert labels.label_for(0.5, 2.5) == "a"


def test_segments_and_past() -> None:
    labels = Labels({"00:00": "negative", "00:04": "positive", "00:50": "negative"})
    segs = labels.segments(30.0)
    assert [(s.start, s.end, s.label) for s in segs] == [
        (0.0, 4.0, "negative"),
        (4.0, 30.0, "positive"),
    ]  # never a negative stretch past the end
    assert segs[0].duration == 4.0
    assert labels.segments()[-1].end is None
    assert labels.segments()[-1].duration is None
    assert labels.past(30.0) == [50.0]


def test_merged_adds_and_replaces_entries() -> None:
    base = Labels({"00:00": "negative", "00:10": "positive"}, source="a.json")
    merged = base.merged({"0:10": "other", "00:20": "negative"})
    assert list(merged) == [(0.0, "negative"), (10.0, "other"), (20.0, "negative")]
    assert merged.source == "a.json"
    assert list(base) == [(0.0, "negative"), (10.0, "positive")]  # unchanged
    assert list(base.merged(Labels({"5": "x"}))) == [(0.0, "negative"), (5.0, "x"), (10.0, "positive")]


def test_merged_validates_the_other_mapping() -> None:
    with pytest.raises(LabelsError, match="'zz'"):
        Labels({"0": "a"}).merged({"zz": "b"})


# -- saving ------------------------------------------------------------------------------------------
def test_save_writes_valid_json_that_loads_back(tmp_path: Path) -> None:
    labels = Labels({"00:00": "negative", "00:01.5": "positive", "01:00:00.250": "negative"})
    path = tmp_path / "sub" / "labels.json"
    labels.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"00:00": "negative", "00:01.500": "positive", "01:00:00.250": "negative"}
    assert list(Labels.load(path)) == list(labels)
    assert [p.name for p in path.parent.iterdir()] == ["labels.json"]  # no temporary left over


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"00:00": "old"}')
    Labels({"00:00": "new"}).save(path)
    assert json.loads(path.read_text()) == {"00:00": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json"]


def test_save_failure_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "labels.json"
    target.mkdir()  # the final rename cannot replace a folder
    with pytest.raises(OSError):
        Labels({"00:00": "new"}).save(target)
    assert target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json"]


def test_a_short_sound_names_the_window_that_holds_it_when_background_is_known() -> None:
    labels = Labels(
        {"00:00": "negative", "00:03.2": "bark", "00:03.8": "negative", "00:10": "cry", "00:11": "negative"}
    )
    # Majority alone: a 0.6 s bark never names a 2 s window.
    assert labels.label_for(2.0, 4.0) == "negative"
    assert labels.label_for(2.0, 4.0, background=["negative"]) == "bark"
    # A window holding less than half of the bark, and less than half a window of it: background.
    assert labels.label_for(3.7, 5.7, background=["negative"]) == "negative"
    # The 1 s cry straddles two windows; each holds half of it.
    assert labels.label_for(8.5, 10.5, background=["negative"]) == "cry"
    assert labels.label_for(10.5, 12.5, background=["negative"]) == "cry"
    # Long stretches keep the majority rule.
    assert labels.label_for(11.0, 13.0, background=["negative"]) == "negative"


def test_datagen_labels_short_sounds(tmp_path) -> None:  # noqa: ANN001
    import json

    from helpers import make_recording
    from micmon.audio import AudioDirectory
    from micmon.dataset import Dataset
    from micmon.dataset.generate import process_folder
    from micmon.features import FeatureSpec

    folder = make_recording(tmp_path / "rec", seconds=12.0, events=((3.2, 3.8),), rate=16000)
    assert json.loads((folder / "labels.json").read_text())  # 0.6 s of beeps
    spec = FeatureSpec(sample_rate=16000, window_seconds=2.0, high_freq=8000.0)
    majority = process_folder(AudioDirectory(folder), tmp_path / "a.npz", spec)
    held = process_folder(AudioDirectory(folder), tmp_path / "b.npz", spec, background_labels=["negative"])
    assert majority.counts.get("positive", 0) == 0
    assert held.counts["positive"] == 1
    assert Dataset.load(tmp_path / "b.npz").class_counts()["positive"] == 1
