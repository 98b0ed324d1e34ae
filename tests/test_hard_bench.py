"""The hard benchmark's own checks: its arguments and its threshold-free window figures."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from helpers import bench_module


@pytest.fixture(scope="module")
def hard_bench() -> ModuleType:
    return bench_module("hard_bench")


@pytest.mark.parametrize("script", ["hard_bench", "hard_replay"])
@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--tasks", "chime,nosuch", "nosuch"),
        ("--seeds", "0,x", "0,x"),
        ("--variants", "nosuch-reseed100", "nosuch-reseed100"),
    ],
)
def test_an_unknown_task_variant_or_a_bad_seed_stops_before_any_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    script: str,
    flag: str,
    value: str,
    named: str,
) -> None:
    if script == "hard_replay" and flag == "--variants":
        flag = "--variant"  # the replay takes one variant
    with pytest.raises(SystemExit) as stop:
        bench_module(script).main(["--corpus", str(tmp_path), "--out", str(tmp_path / "out"), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in err and repr(named) in err
    assert not (tmp_path / "out").exists()  # nothing written


def _scored(scores: list[float], truth: list[str | None]) -> SimpleNamespace:
    s = np.array(scores)
    return SimpleNamespace(labels=("bell", "negative"), scores=np.stack([s, 1 - s], axis=1), truth=truth)


def test_window_ranking_rewards_order_not_the_one_half_cut(hard_bench: ModuleType) -> None:
    # every bell window scores above every other, though all below one half: a perfect ranking
    low = _scored([0.3, 0.2, 0.1, 0.05], ["bell", "bell", "negative", None])
    assert hard_bench.window_ranking([low], ["bell"]) == {
        "window_average_precision": 1.0,
        "window_best_f1": 1.0,
    }
    # one other window ranked between the two bell windows: precision 1 then 2/3
    mixed = _scored([0.9, 0.8, 0.7, 0.1], ["bell", "negative", "bell", "negative"])
    figures = hard_bench.window_ranking([mixed], ["bell"])
    assert figures["window_average_precision"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert figures["window_best_f1"] == pytest.approx(0.8, abs=1e-4)  # threshold 0.7: p 2/3, r 1
    # no window of the target at all: nothing to rank, zero
    none = _scored([0.9, 0.1], ["negative", "negative"])
    assert hard_bench.window_ranking([none], ["bell"])["window_average_precision"] == 0.0


def _alarm(label: str, start: float) -> SimpleNamespace:
    return SimpleNamespace(label=label, start=start, end=start + 1.0)


def _room(tmp_path: Path, name: str, alarms: list[SimpleNamespace]) -> SimpleNamespace:
    return SimpleNamespace(scores=SimpleNamespace(path=str(tmp_path / name)), detections=alarms)


def test_false_alarms_are_counted_by_label_and_by_the_sound_they_overlap(
    tmp_path: Path, hard_bench: ModuleType
) -> None:
    def sound(name: str, t: float, test_only: bool = False) -> dict[str, object]:
        return {"sound": name, "t": t, "seconds": 1.0, "test_only": test_only}

    manifest = {
        "room": {
            "train": [{"path": "room/train/room_01", "sounds": [sound("door.ogg", 5.0)]}],
            "test": [
                {
                    "path": "room/test/room_01",
                    "sounds": [
                        sound("door.ogg", 10.0),
                        sound("bell.wav", 20.0, True),
                        sound("cup.ogg", 30.0),
                    ],
                }
            ],
        }
    }
    report = SimpleNamespace(
        recordings=[
            # the test room: a fitted sound, a test-only sound, another pool sound, then talk alone
            _room(
                tmp_path,
                "room/test/room_01",
                [_alarm("bat", 10.2), _alarm("bat", 19.6), _alarm("horse", 30.5), _alarm("bat", 50.0)],
            ),
            # an event recording's detections are not room false alarms
            _room(tmp_path, "creatures/test/rec_01", [_alarm("horse", 1.0)]),
        ]
    )
    fit_room = [tmp_path / "room/train/room_01"]
    counts = hard_bench.false_alarms_by(report, tmp_path, manifest, fit_room)
    assert counts["by_label"] == {"bat": 3, "horse": 1}
    assert counts["by_source"] == {
        "test-only sound": 1,
        "sound of the fitted room audio": 1,
        "other training-pool sound": 1,
        "speech only": 1,
    }
    # fitted on no room audio: the door is just another pool sound
    assert (
        hard_bench.false_alarms_by(report, tmp_path, manifest, [])["by_source"]["other training-pool sound"]
        == 2
    )
    # a manifest that does not place its sounds: labels still counted, sources unknown
    manifest["room"]["test"][0]["sounds"] = None
    unplaced = hard_bench.false_alarms_by(report, tmp_path, manifest, fit_room)
    assert unplaced == {"by_label": {"bat": 3, "horse": 1}, "by_source": None}


def test_the_calibration_close_calls_name_the_corpus_sounds_under_them(
    tmp_path: Path, hard_bench: ModuleType
) -> None:
    from micmon.audio import AudioDirectory
    from micmon.detect import DetectorSettings
    from micmon.evaluate import RecordingScores, Remix, evaluate_scores
    from micmon.labels import LabelSegment

    def room(path: Path, peak: float) -> RecordingScores:
        times = np.arange(0.0, 19.0, 0.5)
        scores = np.zeros((len(times), 2))
        scores[times == 5.0] = [1 - peak, peak]
        runs = [LabelSegment(0.0, 20.0, "negative")]
        labels = ("negative", "wolf")
        levels = np.full(len(times), -20.0)
        truth: list[str | None] = ["negative"] * len(times)
        where = (path.name, str(path), labels, 1.0, 0.5, 20.0)
        return RecordingScores(*where, times, scores, levels, truth, runs)

    def sound(name: str, t: float) -> dict[str, object]:
        return {"sound": f"/usr/share/sounds/{name}", "t": t, "seconds": 1.0, "test_only": False}

    manifest = {
        "room": {
            "train": [
                {"path": "room/train/room_01", "sounds": [sound("grunt.ogg", 5.2), sound("cup.ogg", 15.0)]},
                {"path": "room/train/room_02", "sounds": [sound("bell.wav", 12.0)]},
            ],
            "test": [],
        }
    }
    (tmp_path / "mix" / "remix-1").mkdir(parents=True)
    (tmp_path / "mix" / "remix-1" / "audio.wav").write_bytes(b"")
    first, second = tmp_path / "room/train/room_01", tmp_path / "room/train/room_02"
    mix = Remix(AudioDirectory(tmp_path / "mix" / "remix-1"), str(first), str(second), 7.0, 20.0)
    report = evaluate_scores(
        [room(first, 0.6), room(Path(mix.directory.path), 0.9)], DetectorSettings(threshold=0.99)
    )
    calls = hard_bench.calibration_close_calls(report, [mix], tmp_path, manifest, limit=2)
    remixed, alone = calls
    # the remix names the room heard as recorded and the one mixed in, with what each had there
    assert remixed["recording"] == "room/train/room_01" and remixed["score"] == 0.9
    assert (remixed["start"], remixed["sounds"]) == (5.0, ["grunt.ogg"])
    assert (remixed["mixed_with"], remixed["mixed_at"], remixed["mixed_sounds"]) == (
        "room/train/room_02",
        12.0,
        ["bell.wav"],
    )
    assert (alone["recording"], alone["score"], alone["sounds"]) == ("room/train/room_01", 0.6, ["grunt.ogg"])
    assert "mixed_with" not in alone and not alone["alarm"]


def test_a_recording_is_played_louder_or_quieter_with_its_labels(tmp_path: Path) -> None:
    import subprocess

    from micmon.features import dbfs

    def level_db(path: Path) -> float:
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-"],
            capture_output=True,
            check=True,
        ).stdout
        return dbfs(np.frombuffer(raw, dtype=np.int16))

    hard_level = bench_module("hard_level")
    folder = tmp_path / "rec_01"
    folder.mkdir()
    (folder / "labels.json").write_text('{"00:00": "negative", "00:01": "chime"}')
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:duration=2:sample_rate=16000",
            "-af",
            "volume=-20dB",
            str(folder / "audio.ogg"),
        ],
        check=True,
    )
    assert hard_level.played_at(folder, 0, tmp_path / "scratch") == folder  # as recorded: no copy
    levels = {}
    for gain in (-12.0, 12.0):
        copy = hard_level.played_at(folder, gain, tmp_path / "scratch")
        assert (copy / "labels.json").read_text() == (folder / "labels.json").read_text()
        levels[gain] = level_db(copy / "audio.flac")
    assert levels[12.0] - levels[-12.0] == pytest.approx(24.0, abs=0.2)
    with pytest.raises(SystemExit) as stop:
        hard_level.main(["--out", str(tmp_path), "--levels", "-12,x"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:  # a folder hard_bench.py did not write: an error, no traceback
        hard_level.main(["--out", str(tmp_path)])
    assert stop.value.code == 2
    for name, (_, target_db) in hard_level.HUSH.items():  # a night's quiet room, at its stated level
        hush = hard_level.hush_room(name, tmp_path / "hush", seconds=5)
        assert (hush / "labels.json").read_text() == '{"00:00.000": "negative"}'
        assert level_db(hush / "audio.flac") == pytest.approx(target_db, abs=0.5)


def _run_folder(out: Path, task: str, recall: float, fa: float, f1: float, levels: list[int] | None) -> str:
    """Write a hard_bench.py output folder with one run of `task` (and a level probe)."""
    import json

    key = f"variant/{task}/7"
    out.mkdir()
    run = {
        "cli_remix_calibration": {"event_recall": recall, "false_alarms_per_hour_room": fa},
        "oracle_recall": 0.9,
        "window_average_precision": 0.5,
        "window_macro_f1": f1,
    }
    (out / "results.json").write_text(json.dumps({key: run}))
    if levels is not None:
        probe = {
            level: {"found": found, "events": 10, "false_alarms_per_hour_room": fa_at}
            for level, found, fa_at in zip(("-12", "+0", "+12"), levels, (0.0, fa, 4 * fa), strict=True)
        }
        (out / "level.json").write_text(json.dumps({key: probe}))
    return str(out)


def test_a_recording_is_delivered_again_in_each_format_and_rate_with_its_labels(tmp_path: Path) -> None:
    import subprocess

    hard_forms = bench_module("hard_forms")
    folder = tmp_path / "rec_01"
    folder.mkdir()
    (folder / "labels.json").write_text('{"00:00": "negative", "00:01": "chime"}')
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=2:sample_rate=44100"]
        + ["-ac", "2", str(folder / "audio.flac")],
        check=True,
    )
    for fmt in ("mp3", "wav", "flac", "ogg"):
        for rate in (16000, 48000):
            copy = hard_forms.delivered_as(folder, fmt, rate, tmp_path / "scratch")
            assert (copy / "labels.json").read_text() == (folder / "labels.json").read_text()
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels"]
                + ["-of", "json", str(copy / f"audio.{fmt}")],
                capture_output=True,
                text=True,
                check=True,
            )
            stream = json.loads(probe.stdout)["streams"][0]
            assert int(stream["sample_rate"]) == rate and stream["channels"] == 2  # channels as recorded
    with pytest.raises(ValueError, match="aac"):
        hard_forms.delivered_as(folder, "aac", 16000, tmp_path / "scratch")
    assert hard_forms.spread({"mp3": 0.9, "wav": 0.75, "ogg": 1.0}) == 0.25
    for bad in (["--rates", "16k"], ["--rates", "4000"], ["--formats", "aac"], []):
        with pytest.raises(SystemExit) as stop:  # bad flags, or a folder hard_bench.py did not write
            hard_forms.main(["--out", str(tmp_path), *bad])
        assert stop.value.code == 2


def test_pairs_are_judged_by_both_rules_on_their_means(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hard_pairs = bench_module("hard_pairs")
    # the candidate loses 0.05 of recall as recorded but is level-proof: the rules disagree
    defaults = _run_folder(tmp_path / "d", "chime", 0.9, 1.0, 0.4, [5, 9, 10])
    candidate = _run_folder(tmp_path / "c", "chime", 0.85, 1.0, 0.5, [9, 9, 9])
    hard_pairs.main(["--task", "chime", "--need", "1", f"{defaults}:{candidate}"])
    shown = capsys.readouterr().out
    assert "recall: 0.900 -> 0.850 (-0.050)" in shown
    assert "recall over three levels: 0.800 -> 0.900 (+0.100)" in shown
    assert "worst pair's calibrated recall (not in the rules): 0.900 -> 0.850" in shown
    assert "recorded-level rule: fails: recall loss +0.050 (BROKEN" in shown
    assert "level rule: passes" in shown
    assert "no verdict" not in shown
    hard_pairs.main(["--task", "chime", f"{defaults}:{candidate}"])  # fewer pairs than the rule needs
    assert "1 of 6 pairs: no verdict" in capsys.readouterr().out

    # without a level probe the level rule says so; a wrong task or folder is a one-line error
    bare = _run_folder(tmp_path / "b", "chime", 0.9, 1.0, 0.4, None)
    hard_pairs.main(["--task", "chime", f"{defaults}:{bare}"])
    assert "level rule: not every network has a level probe" in capsys.readouterr().out
    for pair, named in (
        (f"{defaults}:{candidate}", "expected one run of task 'wolf', found 0"),
        (f"{defaults}:{tmp_path / 'nosuch'}", "nosuch/results.json: no such file"),
        (defaults, "expected DEFAULTS_OUT:CANDIDATE_OUT"),
    ):
        with pytest.raises(SystemExit) as stop:
            hard_pairs.main(["--task", "wolf" if "wolf" in named else "chime", pair])
        assert named in str(stop.value.code)


def test_every_variant_pins_what_it_trains_so_a_new_library_default_cannot_change_it(
    hard_bench: ModuleType,
) -> None:
    from dataclasses import fields

    from micmon.training import TrainingOptions

    # what a run sets itself (its labels, its background label, its seed) is not a variant's
    per_run = {"labels", "background_label", "seed"}
    unpinned = {f.name for f in fields(TrainingOptions)} - per_run - set(hard_bench.DEFAULTS)
    assert not unpinned, f"pin {sorted(unpinned)} in hard_bench.DEFAULTS"
    named = hard_bench.options("dense-max-refit-bgmix-floor")
    assert (named["frontend"], named["augment_gain_db"], named["quiet_negatives"]) == ("log", 6.0, 0.0)


def test_the_default_variant_trains_what_micmon_train_does_with_no_flags(hard_bench: ModuleType) -> None:
    """The bench's default variant and the library's training defaults are one recipe."""
    from dataclasses import fields

    from micmon.training import TrainingOptions

    library = TrainingOptions()
    variant = hard_bench.options(hard_bench.DEFAULT_VARIANT)

    def same(a: object, b: object) -> bool:
        return (tuple(a) if isinstance(a, list) else a) == (tuple(b) if isinstance(b, list) else b)

    # what the README's flow passes on the command line: the features' own network and
    # `micmon train --holdout-recordings 2`
    flow = {"model_type": "cnn", "holdout_recordings": 2}
    differ = {
        f.name
        for f in fields(TrainingOptions)
        if f.name in variant and not same(variant[f.name], flow.get(f.name, getattr(library, f.name)))
    }
    assert not differ, f"{hard_bench.DEFAULT_VARIANT} differs from TrainingOptions() in {sorted(differ)}"


def test_every_kept_run_can_be_judged_in_pairs() -> None:
    """bench/results/<run>/ (kept from the twenty-eighth round on) is read as hard_bench's output."""
    import json

    hard_pairs = bench_module("hard_pairs")
    kept = sorted((Path(__file__).resolve().parents[1] / "bench" / "results").iterdir())
    assert kept, "bench/results holds no run"
    for folder in kept:
        (key,) = json.loads((folder / "results.json").read_text())  # one run a folder
        arm = hard_pairs.load(folder, key.split("/")[1])
        assert arm.name == folder.name and 0 <= arm.recall <= 1 and 0 <= arm.ceiling <= 1
        assert arm.levels is not None, f"{folder.name}: keep its level.json (hard_level.py --room) too"


def test_make_bench_runs_every_benchmark_script() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    listed = re.search(r"^BENCH_SCRIPTS = ((?:.*\\\n)*.*)$", makefile, re.M)
    assert listed is not None
    named = set(listed[1].replace("\\\n", " ").split())
    assert "bench/hard_level.py --out bench/out/hard_bench --room" in makefile
    assert "bench/hard_forms.py --out bench/out/hard_bench" in makefile
    assert "bench/hard_instances.py --out bench/out/hard_bench" in makefile
    scripts = {p.stem for p in (root / "bench").glob("*.py") if "__main__" in p.read_text()}
    # hard_level.py, hard_forms.py and hard_instances.py run after the list on hard_bench.py's
    # networks; hard_pairs.py
    # needs folders named, embedding_probe.py a pretrained network downloaded by hand (a one-off probe)
    assert scripts - named == {"hard_level", "hard_forms", "hard_instances", "hard_pairs", "embedding_probe"}
    assert named <= scripts


def test_an_events_instances_are_named_by_what_tells_them_apart() -> None:
    hard_instances = bench_module("hard_instances")
    wolf = [
        {"instances": ["wolf-hit-2.ogg", "wolf-die-3.ogg", "wolf-hit-2.ogg"]},
        {"instances": ["wolf-growl-4.ogg"]},
    ]
    prefix = hard_instances.common_prefix(wolf)
    assert prefix == "wolf-"
    assert [hard_instances.instance_set(e, prefix) for e in wolf] == ["die-3+hit-2", "growl-4"]
    scream = [{"instances": ["human-female-hit-2.ogg"]}, {"instances": ["human-female-die-2.ogg"]}]
    assert hard_instances.common_prefix(scream) == "human-female-"
    assert hard_instances.common_prefix([{"instances": ["bat-hit-3.ogg"]}]) == "bat-"
    assert hard_instances.common_prefix([{"instances": ["applause.ogg"]}]) == ""
