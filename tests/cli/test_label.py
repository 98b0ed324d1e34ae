"""`micmon label`: merge pairs, timeline with loudness, --check, --suggest, errors."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import make_recording
from micmon.labels import parse_time


def _recording(root: Path, name: str = "s1", **kwargs) -> Path:
    kwargs.setdefault("seconds", 12.0)
    kwargs.setdefault("events", ((4.0, 8.0),))
    return make_recording(root / "audio" / name, rate=16000, **kwargs)


def test_pairs_merge_into_labels_json_and_show_the_timeline(invoke, isolated: Path) -> None:
    folder = _recording(isolated, labels=False)
    result = invoke(["label", "--audio-dir", "audio", "s1", "00:00=negative", "4=positive"])
    assert result.exit_code == 0, result.output
    result = invoke(["label", "--audio-dir", "audio", "s1", "00:08.000=negative"])
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "labels.json").read_text()) == {
        "00:00": "negative",
        "00:04": "positive",
        "00:08": "negative",
    }
    rows = [ln for ln in result.stdout.splitlines() if "negative" in ln or "positive" in ln]
    assert len(rows) == 3
    # The beeping segment is the loud one: its mean dBFS is well above the background's.
    levels = {ln.split("│")[3].strip(): float(ln.split("│")[5]) for ln in rows}
    assert levels["positive"] > levels["negative"] + 6


def test_sample_can_be_a_path(invoke, isolated: Path) -> None:
    folder = _recording(isolated)
    result = invoke(["label", str(folder)])
    assert result.exit_code == 0, result.output
    assert "positive" in result.stdout


def test_label_errors(invoke, assert_error, isolated: Path) -> None:
    _recording(isolated, labels=False)
    base = ["label", "--audio-dir", "audio"]
    assert_error(invoke([*base, "s1", "00:30=positive"]), "00:30", "past the end", "00:12")
    assert_error(invoke([*base, "s1", "1:75=positive"]), "'1:75'", "seconds must be < 60")
    assert_error(invoke([*base, "s1", "positive"]), "'positive'", "TIME=LABEL")
    assert_error(invoke([*base, "s1"]), "labels.json", "no labels yet")
    assert_error(invoke([*base, "nope"]), "nope", "no such sample folder")
    assert not (isolated / "audio" / "s1" / "labels.json").exists()


def test_check_lists_every_problem_at_once(invoke, assert_error, isolated: Path) -> None:
    _recording(isolated, "good")
    _recording(isolated, "unlabelled", labels=False)
    late = _recording(isolated, "late")
    (late / "labels.json").write_text(json.dumps({"00:00": "negative", "00:30": "positive"}))
    odd = _recording(isolated, "odd")
    (odd / "labels.json").write_text(json.dumps({"00:00": "negative", "00:02": "cat"}))
    (isolated / "audio" / "orphan").mkdir()
    (isolated / "audio" / "orphan" / "labels.json").write_text("{}")
    (isolated / "micmon.yaml").write_text(
        "paths:\n  audio_dir: audio\ntraining:\n  labels: [negative, positive]\n"
    )
    result = invoke(["label", "--check"])
    assert_error(result, "4 problems")
    table = " ".join(result.stdout.split())
    assert "unlabelled" in table and "no labels.json" in table
    assert "late" in table and "00:30 is past the end" in table
    assert "odd" in table and "'cat' is not in training.labels" in table
    assert "orphan" in table and "no audio file" in table
    assert "good" not in table.replace("unlabelled", "")


def test_check_passes_on_good_folders(invoke, isolated: Path) -> None:
    _recording(isolated, "a")
    result = invoke(["label", "--check", "--audio-dir", "audio"])
    assert result.exit_code == 0, result.output
    assert "fine" in result.stdout


def test_suggest_drafts_boundaries_near_the_loud_segments(invoke, isolated: Path) -> None:
    _recording(isolated, "long", seconds=30.0, events=((6.0, 12.0), (20.0, 25.0)), labels=False)
    result = invoke(["label", "--audio-dir", "audio", "long", "--suggest"])
    assert result.exit_code == 0, result.output
    draft = json.loads(result.stdout)
    found = [(parse_time(t), label) for t, label in draft.items()]
    assert [label for _, label in found] == ["negative", "positive", "negative", "positive", "negative"]
    for (t, _), expected in zip(found[1:], (6.0, 12.0, 20.0, 25.0), strict=True):
        assert abs(t - expected) <= 0.5
