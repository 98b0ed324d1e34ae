"""`micmon demo`: the whole job on generated audio, end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_finds_the_alarms(invoke, isolated: Path) -> None:
    result = invoke(["demo", "ws"])
    assert result.exit_code == 0, result.output
    ws = isolated / "ws"
    for name in (
        "micmon.yaml",
        "audio/sample_1/audio.mp3",
        "audio/sample_1/labels.json",
        "data/sample_1.npz",
        "model/model.tflite",
        "model/micmon.json",
        "test/audio.mp3",
        "test/labels.json",
    ):
        assert (ws / name).is_file(), name
    summary = " ".join(result.stdout.split())
    match = re.search(r"found (\d) of (\d) alarms, (\d+) false alarms?; (\d+)/(\d+) windows", summary)
    assert match, summary
    found, total, false_alarms, correct, windows = map(int, match.groups())
    assert total == 4 and found >= 3 and false_alarms <= 1
    assert correct / windows >= 0.8
    # The workspace's config drives the other commands.
    again = invoke(["--config", ws / "micmon.yaml", "predict", ws / "test"])
    assert again.exit_code == 0, again.output
    assert "alarm" in again.stdout


def test_demo_refuses_a_non_empty_folder(invoke, assert_error, isolated: Path) -> None:
    (isolated / "ws").mkdir()
    (isolated / "ws" / "notes.txt").write_text("mine")
    assert_error(invoke(["demo", "ws"]), "ws", "not empty", "--force")
    assert (isolated / "ws" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (isolated / "ws").iterdir()) == ["notes.txt"]
