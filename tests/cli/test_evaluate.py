"""`micmon evaluate`: the command replays recordings, reports as tables or JSON, calibrates, plots."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import make_recording
from micmon_cli.app import app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def model_copy(trained_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session model, so calibration can write its micmon.json."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "model"))


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI; return (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_report_counts_events(workspace: Path, trained_model_dir: Path) -> None:
    code, out, err = run(
        "evaluate", str(workspace / "audio"), "--model", str(trained_model_dir), "--hop", "1", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    overall = report["overall"]
    assert report["targets"] == ["positive"] and report["hop_seconds"] == 1.0
    assert len(report["recordings"]) == 4
    assert overall["events"] == 4  # one beeping event per recording
    assert overall["found"] + overall["missed"] == 4
    assert overall["event_recall"] >= 0.75
    assert overall["window_accuracy"] >= 0.8
    assert set(overall["labels"]) == {"negative", "positive"}
    assert report["detector"]["threshold"] == 0.5  # no calibration: the config's default
    calls = report["close_calls"]  # the highest scores outside the labelled beeps, highest first
    assert 0 < len(calls) <= 5 and all(c["label"] == "positive" for c in calls)
    assert [c["score"] for c in calls] == sorted((c["score"] for c in calls), reverse=True)
    assert sum(c["alarm"] for c in calls) <= overall["false_alarms"]


def test_tables_on_the_terminal(workspace: Path, trained_model_dir: Path) -> None:
    code, out, err = run(
        "evaluate", str(workspace / "audio"), "--model", str(trained_model_dir), "--hop", "1"
    )
    assert code == 0, err
    assert "Events of positive" in out and "precision" in out and "detector: threshold" in out
    assert "close calls" in out.lower()  # a table of them, or a line saying none came near


def test_close_calls_near_the_threshold_are_listed_with_where_to_listen(
    workspace: Path, trained_model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "micmon.yaml"
    config.write_text("monitor:\n  threshold: 0.0001\n")  # every score outside the beeps comes near it
    args = ("--config", str(config), "evaluate", str(workspace / "audio"), "--model", str(trained_model_dir))
    code, out, err = run(*args, "--hop", "1", "--json")
    assert code == 0, err
    calls = json.loads(out)["close_calls"]
    assert calls and all(c["threshold"] == 0.0001 for c in calls)
    code, out, err = run(*args, "--hop", "1")
    assert code == 0, err
    assert "Close calls: highest scores outside the labelled events" in out and "label any that is" in out
    first = calls[0]
    assert first["recording"] in out  # where to listen: the recording, and the time in it


def test_config_threshold_applies_without_calibration(
    workspace: Path, model_copy: Path, tmp_path: Path
) -> None:
    config = tmp_path / "micmon.yaml"
    config.write_text("monitor:\n  threshold: 0.9\n")
    code, out, err = run(
        "--config",
        str(config),
        "evaluate",
        str(workspace / "audio"),
        "--model",
        str(model_copy),
        "--hop",
        "1",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["detector"]["threshold"] == 0.9


def test_calibrate_stores_settings_within_budget(workspace: Path, model_copy: Path, tmp_path: Path) -> None:
    code, out, err = run(
        "evaluate",
        str(workspace / "audio"),
        "--model",
        str(model_copy),
        "--hop",
        "1",
        "--calibrate",
        "--max-false-alarms-per-hour",
        "50",
        "--json",
        "--plot",
        str(tmp_path / "plots"),
    )
    assert code == 0, err
    report = json.loads(out)
    calibration = report["calibration"]
    assert calibration["max_false_alarms_per_hour"] == 50.0
    assert calibration["met_budget"] is True
    assert report["overall"]["false_alarms_per_hour"] <= 50.0
    stored = json.loads((model_copy / "micmon.json").read_text())
    assert stored["detector"] == report["detector"]
    assert stored["calibration"]["hop_seconds"] == 1.0
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [
        "sample_1.png",
        "sample_2.png",
        "sample_3.png",
        "sample_4.png",
        "tradeoff.png",
    ]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)

    # the next run (and monitor) picks the calibrated settings up
    code, out, err = run("evaluate", str(workspace / "audio"), "--model", str(model_copy), "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["detector"] == stored["detector"] and again["hop_seconds"] == 1.0


def test_calibrate_on_remixed_background_recordings(
    workspace: Path, model_copy: Path, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(workspace / "audio" / "sample_1", audio / "sample_1")
    make_recording(audio / "room", seconds=30.0, events=(), seed=7)
    args = ("evaluate", str(audio), "--model", str(model_copy), "--hop", "1", "--calibrate", "--json")
    code, out, err = run(*args, "--max-false-alarms-per-hour", "50", "--remix-background")
    assert code == 0, err
    assert "calibrating also on 1 remix(es) of the background recordings" in " ".join(err.split())
    report = json.loads(out)
    # the room mixed with itself is calibrated on as well, with its hours; the report is still on
    # the recordings as they are
    assert (report["calibration"]["recordings"], report["calibration"]["remixes"]) == (2, 1)
    assert report["calibration"]["hours"] == pytest.approx((40 + 30 + 30) / 3600, abs=2e-4)
    # ... but only the recorded hours vouch for the budget
    assert report["calibration"]["remixed_hours"] == pytest.approx(30 / 3600, abs=2e-4)
    assert "in 0.019 h of recorded audio only show" in " ".join(err.split())
    assert sorted(Path(r["path"]).name for r in report["recordings"]) == ["room", "sample_1"]
    assert not list(Path(tmp_path).glob("**/remix-*"))  # made in a scratch folder, then removed
    code, out, err = run(*args, "--max-false-alarms-per-hour", "50", "--no-remix-background")
    assert code == 0, err
    assert (json.loads(out)["calibration"]["remixes"], "remix(es)" in err) == (0, False)

    shutil.rmtree(audio / "room")
    code, out, err = run(*args, "--remix-background")
    assert code == 0, err
    assert "no background recording to remix" in " ".join(err.split())
    assert json.loads(out)["calibration"]["recordings"] == 1


def test_close_calls_in_the_remixes_name_both_recordings(
    workspace: Path, model_copy: Path, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(workspace / "audio" / "sample_1", audio / "sample_1")
    # the room has the beeps at 5-8 s, labelled background: a lookalike, and in the remix too
    make_recording(audio / "room", seconds=30.0, events=((5.0, 8.0),), positive="negative")
    args = ("evaluate", str(audio), "--model", str(model_copy), "--hop", "1", "--calibrate")
    code, out, err = run(*args, "--max-false-alarms-per-hour", "50", "--remix-background", "--json")
    assert code == 0, err
    calls = json.loads(out)["close_calls"]
    mixed = [c for c in calls if "mixed_with" in c]
    assert mixed, calls  # the room mixed with itself beeps where the room does
    room = str(audio / "room")
    assert all((c["recording"], c["path"], c["mixed_with"]) == ("room", room, "room") for c in mixed)
    assert all(c["mixed_with_path"] == room for c in mixed)
    assert all(0 <= c["mixed_at"] < 30 for c in mixed)
    assert any(c["start"] < 8 and c["end"] > 5 for c in mixed)
    code, out, err = run(*args, "--max-false-alarms-per-hour", "50", "--remix-background")
    assert code == 0, err
    # the room's beeps score as high as the labelled ones: calibration says so
    assert "the highest threshold tried" in " ".join(err.split())
    text = " ".join(out.split())
    assert "listen to both" in text
    # the remix is the recording's second line, whole: "+ room at 00:21.489"
    assert re.search(r"│ \+ room at [0-9:.]+ +│", out), out


def test_missing_model_is_one_error_line(workspace: Path, tmp_path: Path) -> None:
    code, _, err = run("evaluate", str(workspace / "audio"), "--model", str(tmp_path / "nope"))
    assert code == 1
    assert "nope" in err and "Traceback" not in err


def test_no_labelled_recordings_is_an_error(trained_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run("evaluate", str(tmp_path / "empty"), "--model", str(trained_model_dir))
    assert code == 1
    assert "no labelled sample folders" in err


@pytest.mark.slow
def test_holdout_recordings_then_calibrate_warns_about_trained_ones(workspace: Path, tmp_path: Path) -> None:
    data, model = tmp_path / "data", tmp_path / "model"
    code, _, err = run(
        "datagen",
        str(workspace / "audio"),
        str(data),
        "--sample-rate",
        "16000",
        "--high",
        "7500",
        "--window-seconds",
        "1",
    )
    assert code == 0, err
    code, _, err = run("train", str(data), str(model), "--epochs", "3", "--holdout-recordings", "1")
    assert code == 0, err
    training = json.loads((model / "micmon.json").read_text())["training"]
    assert len(training["holdout_recordings"]) == 1
    held = training["holdout_recordings"][0]
    assert held not in training["datasets"] and len(training["datasets"]) == 3

    code, out, err = run("evaluate", str(workspace / "audio"), "--model", str(model), "--calibrate", "--json")
    assert code == 0, err
    shown = " ".join(err.split())
    assert "calibrating on 3 recording(s) with the sound the network was trained on" in shown
    assert held not in shown.split("trained on")[1].split(")")[0]
    assert "background recording(s)" not in shown  # the workspace's recordings all hold the sound
    code, out, err = run(
        "evaluate", str(workspace / "audio" / held), "--model", str(model), "--calibrate", "--json"
    )
    assert code == 0, err
    assert "trained on" not in err


@pytest.mark.slow
def test_calibrate_without_a_folder_uses_held_out_and_background_recordings(
    workspace: Path, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(workspace / "audio", audio)
    # An hour of the room is what users should record; a minute shows the mechanism.
    make_recording(audio / "room", seconds=60.0, events=(), seed=42, rate=16000)
    config = tmp_path / "micmon.yaml"
    config.write_text(
        f"paths:\n  audio_dir: {audio}\n  datasets_dir: {tmp_path / 'data'}\n"
        f"  model_dir: {tmp_path / 'model'}\naudio:\n  sample_rate: 16000\n"
        "features:\n  high_freq: 7500\n  window_seconds: 1\n"
    )
    assert run("--config", str(config), "datagen")[0] == 0
    code, _, err = run("--config", str(config), "train", "--epochs", "3", "--holdout-recordings", "1")
    assert code == 0, err
    training = json.loads((tmp_path / "model" / "micmon.json").read_text())["training"]
    held = training["holdout_sources"]
    assert len(held) == 1 and Path(held[0]).parent == audio

    code, out, err = run("--config", str(config), "evaluate", "--calibrate", "--json")
    assert code == 0, err
    shown = " ".join(err.split())
    assert "calibrating on 2 recording(s): the ones training held out and the background" in shown
    assert "calibrating also on 1 remix(es) of the background recordings" in shown  # by default
    # the room was trained on as negatives, as the README's workflow has it: said as what it means,
    # not as advice to hold out recordings (the user did)
    assert "1 background recording(s) here were also trained on, as negatives (room)" in shown
    assert "expect more false alarms on new audio than calibration counts" in shown
    assert "with the sound the network was trained on" not in shown and "--holdout-recordings" not in shown
    report = json.loads(out)
    assert sorted(Path(r["path"]).name for r in report["recordings"]) == sorted([Path(held[0]).name, "room"])
    # A few minutes of audio cannot vouch for 1 false alarm per hour: the user is told.
    assert "per hour (95 % confidence), not 1; record about 3.0 h of your room" in shown
    assert report["calibration"]["false_alarms_per_hour_bound"] > 1
    assert report["calibration"]["remixes"] == 1 and report["calibration"]["recordings"] == 2
    # one held-out recording holds one event: the threshold rests on it alone, and the user is told
    assert report["calibration"]["events"] == {"positive": 1}
    assert "calibrated on fewer than 3 events of positive (1): a threshold set to find so few" in shown


def test_calibrate_without_anything_to_calibrate_on_says_what_to_do(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "audio").mkdir()
    config = tmp_path / "micmon.yaml"
    config.write_text(f"paths:\n  audio_dir: {tmp_path / 'audio'}\n")
    code, _, err = run("--config", str(config), "evaluate", "--model", str(trained_model_dir), "--calibrate")
    assert code == 1
    assert "no recordings to calibrate on" in err and "--holdout-recordings" in err


def test_calibrate_warns_when_a_quiet_room_would_set_the_sound_off(
    workspace: Path, trained_model_dir: Path, tmp_path: Path
) -> None:
    from micmon.model import Model
    from test_evaluate import constant_model

    fixture = Model.load(trained_model_dir)
    assert fixture.spec is not None
    labels = list(fixture.labels)
    order = [labels.index("positive")] + [i for i in range(len(labels)) if labels[i] != "positive"]
    hears_everything = constant_model(fixture.spec, [labels[i] for i in order], 0.97)
    hears_everything.save(tmp_path / "model")
    code, out, err = run(
        "evaluate",
        str(workspace / "audio"),
        "--model",
        str(tmp_path / "model"),
        "--hop",
        "1",
        "--calibrate",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["quiet_room_top_scores"]["positive"] == pytest.approx(0.97, abs=1e-3)
    shown = " ".join(err.split())
    assert "a quiet room (a microphone's own hiss, -85 to -45 dBFS) scores up to 0.97 for positive" in shown
    assert "record your room while it is quiet" in shown

    # the network trained on the workspace's beeps hears the hiss as background: no warning
    model_copy = Path(shutil.copytree(trained_model_dir, tmp_path / "trained"))
    code, out, err = run(
        "evaluate",
        str(workspace / "audio"),
        "--model",
        str(model_copy),
        "--hop",
        "1",
        "--calibrate",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["quiet_room_top_scores"]["positive"] < 0.1
    assert "a quiet room" not in err


def test_help_says_calibration_also_checks_a_quiet_room() -> None:
    from micmon.evaluate import QUIET_ROOM_MARGIN

    code, out, _ = run("evaluate", "--help")
    assert code == 0
    shown = " ".join(out.split())
    assert "generated quiet-room hiss" in shown
    assert f"within {QUIET_ROOM_MARGIN:g} of its threshold is warned about" in shown
