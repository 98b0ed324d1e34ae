"""Play the hard benchmark's test side louder and quieter to its saved networks (issue 8); not in CI.

A user's microphone gain is not the one of the afternoon they labelled: a knob turned, another
USB microphone, the cot moved to the far side of the room. For each network `hard_bench.py` saved
under OUT, this script plays the test side's event recordings (and, with `--room`, its room
recordings) through ffmpeg's `volume` filter at each level of `--levels` dB, scores them as
`monitor` would and detects with the settings the CLI calibrated for that network
(`cli_remix_calibration`: nothing is calibrated again); it prints event recall and false alarms
an hour per level and adds them to OUT/level.json. Level 0 scores the recordings themselves
and reproduces hard_bench's figures; other levels score 16-bit flac copies. Louder copies clip
where the recording reaches full scale, as a microphone turned up too far does.

With `--hush`, each network also hears 2 h of a quiet room at night, generated: a microphone's
own noise (pink at -60 dBFS, or white at -80 dBFS, near a 16-bit recording's floor), stored as
16-bit flac; it reports false alarms an hour and the highest score of a target class.

Example: python bench/hard_level.py --out bench/out/s24_s7d
         python bench/hard_level.py --out bench/out/s24_s7d bench/out/s25_s7r --levels -12,0,12 --room
         python bench/hard_level.py --out bench/out/s25_c10r --levels= --hush pink-60,white-80
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

import hard_bench  # noqa: E402
from micmon._io import write_text_atomic  # noqa: E402
from micmon.audio.directory import find_audio_file  # noqa: E402
from micmon.features import dbfs  # noqa: E402


def level_key(gain_db: float) -> str:
    """The key of one level's figures in OUT/level.json ("-12", "+0", "+12")."""
    return f"{gain_db:+g}"


def played_at(folder: Path, gain_db: float, scratch: Path) -> Path:
    """Return a sample folder holding `folder`'s recording `gain_db` louder (flac) and its labels."""
    if gain_db == 0:
        return folder
    out = scratch / f"{folder.parent.name}_{folder.name}_{gain_db:+g}dB"
    out.mkdir(parents=True)
    (out / "labels.json").write_text((folder / "labels.json").read_text())
    audio = find_audio_file(folder)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(audio), "-af", f"volume={gain_db}dB", str(out / "audio.flac")],
        check=True,
    )
    return out


#: `--hush` rooms: a night's quiet room as a microphone's own noise, (ffmpeg anoisesrc colour, dBFS).
HUSH = {"pink-60": ("pink", -60.0), "white-80": ("white", -80.0)}
HUSH_SECONDS = 2 * 3600


def hush_room(name: str, scratch: Path, seconds: float = HUSH_SECONDS) -> Path:
    """Return a sample folder with `name`'s noise (HUSH) at 44.1 kHz, 16-bit, labelled background."""
    colour, target_db = HUSH[name]
    folder = scratch / f"hush_{name}"
    if folder.is_dir():
        return folder
    source = f"anoisesrc=color={colour}:amplitude=0.5:sample_rate=44100:seed=8:duration="
    # the noise's level first, from its first minute (the same seed draws the same samples)
    probe = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"{source}{min(seconds, 60)}", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    gain = target_db - dbfs(np.frombuffer(probe, dtype=np.int16))
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text('{"00:00.000": "negative"}')
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"{source}{seconds}",
            "-af",
            f"volume={gain:.2f}dB",
        ]
        + ["-sample_fmt", "s16", str(folder / "audio.flac")],
        check=True,
    )
    return folder


def level_figures(
    corpus: Path,
    out: Path,
    key: str,
    row: dict[str, Any],
    levels: Sequence[float],
    room: bool,
    hush: Sequence[str] = (),
    hush_dir: Path | None = None,
) -> dict[str, Any]:
    """Return event recall (and room false alarms an hour) of one saved network at each level and hush."""
    from micmon.detect import DetectorSettings
    from micmon.evaluate import detector_targets, evaluate_scores, score_recording

    variant, task, seed = row["variant"], row["task"], int(row["seed"])
    model = hard_bench.saved_model(out, row)
    settings = DetectorSettings.from_dict(row["cli_remix_calibration"]["detector"])
    folders = hard_bench.recordings(corpus, task, seed, hard_bench.options(variant))
    hop = row["hop_seconds"]

    def scored_at(folder: Path, gain: float) -> Any:
        # one copy at a time (a louder room recording is ~100 MB of flac), removed once scored
        with tempfile.TemporaryDirectory(prefix="hard-level-") as scratch:
            return score_recording(played_at(folder, gain, Path(scratch)), model, hop=hop)

    figures: dict[str, Any] = {}
    for gain in levels:
        events = evaluate_scores([scored_at(f, gain) for f in folders["test_events"]], settings).overall
        entry: dict[str, Any] = {
            "found": events.found,
            "events": events.runs,
            "event_recall": round(events.found / events.runs, 4) if events.runs else None,
        }
        if room:
            alarms = evaluate_scores([scored_at(f, gain) for f in folders["room_test"]], settings).overall
            entry["false_alarms_per_hour_room"] = round(alarms.false_alarms / alarms.hours, 3)
        figures[level_key(gain)] = entry
        hard_bench.log(f"{key}: {level_key(gain)} dB: {entry}")
    for name in hush:
        assert hush_dir is not None
        scores = score_recording(hush_room(name, hush_dir), model, hop=hop)
        alarms = evaluate_scores([scores], settings).overall
        targets = [scores.labels.index(label) for label in detector_targets(scores.labels, settings)]
        figures[f"hush-{name}"] = {
            "false_alarms_per_hour": round(alarms.false_alarms / alarms.hours, 3),
            "top_score": round(float(scores.scores[:, targets].max()), 4),
        }
        hard_bench.log(f"{key}: hush {name}: {figures[f'hush-{name}']}")
    return figures


def main(argv: list[str] | None = None) -> None:
    """Score every saved network under each OUT at each level; print and save the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hard_bench.add_saved_run_arguments(p)
    p.add_argument("--levels", default="-12,0,12", help="comma-separated gains in dB")
    p.add_argument("--room", action="store_true", help="false alarms on the test room audio at each level")
    p.add_argument(
        "--hush",
        default="",
        help=f"comma-separated generated quiet rooms, of {', '.join(HUSH)}: false alarms an hour on 2 h",
    )
    args = p.parse_args(argv)
    hush = [h for h in args.hush.split(",") if h]
    if unknown := [h for h in hush if h not in HUSH]:
        p.error(f"--hush: {unknown[0]!r} is not one of {', '.join(HUSH)}")
    try:
        levels = [float(v) for v in args.levels.split(",") if v]
    except ValueError:
        p.error(f"--levels: {args.levels!r} is not a comma-separated list of numbers")
    scratch = tempfile.TemporaryDirectory(prefix="hard-hush-")  # the generated rooms, made once
    for out in args.out:
        results = hard_bench.saved_results(p, out)
        saved = out / "level.json"
        done = json.loads(saved.read_text()) if saved.exists() else {}
        for key, row in results.items():
            corpus = hard_bench.run_corpus(args.corpus, out, row)
            # levels measured before are kept: a later call with other --levels adds to them
            done.setdefault(key, {}).update(
                level_figures(corpus, out, key, row, levels, args.room, hush, Path(scratch.name))
            )
            write_text_atomic(saved, json.dumps(done, indent=1))
            line = "  ".join(
                f"{g}: {f['false_alarms_per_hour']} FA/h, top {f['top_score']}"
                if g.startswith("hush-")
                else f"{g} dB {f['found']}/{f['events']}"
                + (f", {f['false_alarms_per_hour_room']} FA/h" if "false_alarms_per_hour_room" in f else "")
                for g, f in done[key].items()
            )
            print(f"{out.name} {key}: {line}")


if __name__ == "__main__":
    main()
