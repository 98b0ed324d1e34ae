"""`micmon predict` with a model trained by the CLI, served by LiteRT."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from helpers import make_recording
from micmon.labels import parse_time


def test_predict_prints_windows_and_a_summary_of_events(invoke, cli_model: Path, isolated: Path) -> None:
    # Same rate as the training recordings (22.05 kHz): the tiny model knows only that noise floor.
    folder = make_recording(isolated / "unseen", seconds=20.0, events=((6.0, 14.0),), seed=99, rate=22050)
    result = invoke(["predict", "--model", cli_model, folder / "audio.mp3"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if " - " in ln]
    # Windows every quarter window (0.5 s), as `micmon monitor` listens: 2 s windows over 20 s.
    assert len(lines) == 37
    assert lines[0].split()[:3] == ["00:00", "-", "00:02"]
    assert lines[1].split()[:3] == ["00:00.500", "-", "00:02.500"]
    positives = [ln for ln in lines if "positive" in ln]
    assert 12 <= len(positives) <= 20
    summary = " ".join(result.stdout.split())
    assert "1 event in 37 windows" in summary
    event = re.search(r"positive │ (\S+) │ (\S+) │", summary)
    assert event, summary
    start, end = (parse_time(t) for t in event.groups())
    assert abs(start - 6.0) <= 1.0 and abs(end - 14.0) <= 1.0


def test_predict_json_is_only_json_lines(invoke, cli_model: Path, isolated: Path) -> None:
    folder = make_recording(
        isolated / "unseen", seconds=12.0, events=((4.0, 8.0),), seed=98, rate=22050, labels=False
    )
    other = make_recording(isolated / "other", seconds=8.0, events=(), seed=97, labels=False, rate=22050)
    result = invoke(
        [
            "predict",
            "--model",
            cli_model,
            "--json",
            "--start",
            "00:02",
            "--duration",
            "8",
            "--hop",
            "2",
            folder,
            other / "audio.mp3",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [r for r in lines if r.pop("type") == "window"]
    events = [r for r in lines if r not in rows]
    assert all(set(e) == {"file", "label", "start", "end", "reported", "peak", "duration"} for e in events)
    assert any(e["label"] == "positive" and e["start"] < 8 and e["end"] > 4 for e in events)
    assert [(r["start"], r["end"]) for r in rows[:4]] == [(2.0, 4.0), (4.0, 6.0), (6.0, 8.0), (8.0, 10.0)]
    assert len(rows) == 4 + 3  # 8 s from 00:02 of the first file; 6 s of the 8 s second file
    for row in rows:
        assert set(row) == {"file", "start", "end", "label", "confidence", "scores"}
        assert set(row["scores"]) == {"negative", "positive"}
        assert abs(sum(row["scores"].values()) - 1) < 1e-3
        assert row["confidence"] == max(row["scores"].values())
    assert rows[1]["label"] == "positive" and rows[1]["file"].endswith("audio.mp3")
    assert "event" in result.stderr  # the summary goes to stderr


def test_predict_uses_the_model_dir_from_the_config(invoke, cli_model: Path, isolated: Path) -> None:
    (isolated / "micmon.yaml").write_text(f"paths:\n  model_dir: {cli_model}\n")
    folder = make_recording(isolated / "x", seconds=4.0, events=(), seed=1)
    result = invoke(["predict", folder])
    assert result.exit_code == 0, result.output


def test_predict_errors(invoke, assert_error, cli_model: Path, isolated: Path) -> None:
    folder = make_recording(isolated / "rec", seconds=4.0, events=(), seed=2)
    audio = folder / "audio.mp3"
    (isolated / "not_a_model").mkdir()
    assert_error(
        invoke(["predict", "--model", "not_a_model", audio]), "not_a_model", "no model here", "micmon train"
    )
    assert_error(invoke(["predict", "--model", "missing_model", audio]), "missing_model", "does not exist")
    assert_error(invoke(["predict", "--model", cli_model, "nope.mp3"]), "nope.mp3", "no such audio file")
    bad = isolated / "bad.mp3"
    bad.write_bytes(b"\x00garbage" * 500)
    assert_error(invoke(["predict", "--model", cli_model, bad]), "bad.mp3")
    partial = isolated / "partial_model"
    shutil.copytree(cli_model, partial)
    (partial / "micmon.json").unlink()
    assert_error(invoke(["predict", "--model", partial, audio]), "micmon.json is missing")
    assert_error(
        invoke(["predict", "--model", cli_model, audio, "--ffmpeg", "/no/ffmpeg"]),
        "/no/ffmpeg",
        "does not exist",
    )


def test_predict_with_overlapping_windows(invoke, cli_model: Path, isolated: Path) -> None:
    folder = make_recording(isolated / "hop", seconds=10.0, events=((4.0, 8.0),), seed=5, rate=22050)
    result = invoke(["-q", "predict", "--model", cli_model, "--json", "--hop", "1", folder])
    assert result.exit_code == 0, result.output
    starts = [row["start"] for row in map(json.loads, result.stdout.splitlines()) if row["type"] == "window"]
    assert starts == [float(s) for s in range(9)]
    assert result.stderr.strip() == ""  # --quiet: no summary either
