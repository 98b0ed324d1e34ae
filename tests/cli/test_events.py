"""`micmon events`: the history `micmon monitor` writes, across restarts; listing, filters, CSV export."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import background, beeps, encode

Invoke = Callable[..., Any]

CONFIG = """\
monitor:
  hop: 0.5
  threshold: 0.6
  k: 2
  n: 3
  m: 2
  actions:
    - type: clip
      folder: clips
      format: wav
      pre_roll: 1
"""


@pytest.fixture(scope="module")
def beeping(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rate = 44100
    signal_ = background(9.0, rate, np.random.default_rng(12))
    signal_[int(1.5 * rate) : int(5.5 * rate)] += beeps(4.0, rate)
    return encode(tmp_path_factory.mktemp("events") / "beeping.wav", signal_, rate)


@pytest.fixture
def config(isolated: Path) -> Path:
    path = isolated / "micmon.yaml"
    path.write_text(CONFIG)
    return path


def test_history_survives_restarts_and_lists(
    invoke: Invoke, config: Path, beeping: Path, trained_model_dir: Path, isolated: Path
) -> None:
    # Two monitor runs: the second must not lose the first's events. A --fast replay reports
    # events on the file's own clock, so the second run replays a copy recorded a minute later.
    later = isolated / "later.wav"
    shutil.copyfile(beeping, later)
    mtime = beeping.stat().st_mtime + 60
    os.utime(later, (mtime, mtime))
    for replay in (beeping, later):
        result = invoke(
            [
                "--config",
                config,
                "monitor",
                "--model",
                trained_model_dir,
                "--input",
                replay,
                "--fast",
                "--json",
            ]
        )
        assert result.exit_code == 0, result.output
    assert (isolated / "clips" / "events.sqlite3").exists()  # next to the clips
    result = invoke(["--config", config, "events", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "positive"]
    assert rows[0]["start"] > rows[1]["start"]  # newest first
    assert all(Path(r["clip"]).is_file() and r["model"] == str(trained_model_dir) for r in rows)
    assert invoke(["--config", config, "events", "--json", "--label", "cry"]).stdout == ""
    assert len(invoke(["--config", config, "events", "--json", "-n", "1"]).stdout.splitlines()) == 1
    assert (
        invoke(["--config", config, "events", "--json", "--since", "1d"]).stdout.count('"label": "positive"')
        == 2
    )
    assert invoke(["--config", config, "events", "--json", "--until", "2000-01-01"]).stdout == ""
    table = invoke(["--config", config, "events"])
    assert table.exit_code == 0 and table.stdout.count(" positive ") == 2 and ".wav" in table.stdout
    # export: oldest first, refuses to overwrite without --force
    result = invoke(["--config", config, "events", "--export", "out.csv"])
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader((isolated / "out.csv").open()))
    assert [r["start"] for r in lines] == sorted(r["start"] for r in rows)
    again = invoke(["--config", config, "events", "--export", "out.csv"])
    assert again.exit_code == 1 and "already exists; use --force" in again.stderr
    assert (
        invoke(["--config", config, "events", "--export", "out.csv", "--label", "cry", "--force"]).exit_code
        == 0
    )
    assert len((isolated / "out.csv").read_text().splitlines()) == 1


def test_history_folder_and_disabling_it(
    invoke: Invoke, isolated: Path, beeping: Path, trained_model_dir: Path
) -> None:
    config = isolated / "micmon.yaml"
    config.write_text(CONFIG + "history:\n  folder: data\n")
    assert (
        invoke(
            [
                "--config",
                config,
                "monitor",
                "--model",
                trained_model_dir,
                "--input",
                beeping,
                "--fast",
                "--json",
            ]
        ).exit_code
        == 0
    )
    assert (isolated / "data" / "events.sqlite3").exists()
    assert not (isolated / "clips" / "events.sqlite3").exists()
    config.write_text(CONFIG + "history:\n  enabled: false\n")
    assert (
        invoke(
            [
                "--config",
                config,
                "monitor",
                "--model",
                trained_model_dir,
                "--input",
                beeping,
                "--fast",
                "--json",
            ]
        ).exit_code
        == 0
    )
    assert not (isolated / "clips" / "events.sqlite3").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events"], "events.sqlite3: no event history here yet; `micmon monitor` writes it"),
        (["events", "--since", "last week"], "--since: expected an age such as 1d"),
    ],
)
def test_bad_input_is_one_line(
    invoke: Invoke, assert_error: Callable[..., str], args: list[str], message: str, isolated: Path
) -> None:
    if "--since" in args:
        (isolated / "clips").mkdir()
        from micmon.history import EventStore

        EventStore(isolated / "clips" / "events.sqlite3")
        (isolated / "micmon.yaml").write_text(CONFIG)
    assert_error(invoke(args), message)


def test_web_config_errors_are_one_line(
    invoke: Invoke, assert_error: Callable[..., str], isolated: Path, beeping: Path, trained_model_dir: Path
) -> None:
    base = ["monitor", "--model", trained_model_dir, "--input", beeping, "--fast"]
    assert_error(
        invoke([*base, "--web", "0.0.0.0:0"]),
        "reachable from other machines, so the page needs a token: set monitor.web_token",
    )
    assert_error(invoke([*base, "--web", "eighty"]), "web: expected PORT or HOST:PORT")
