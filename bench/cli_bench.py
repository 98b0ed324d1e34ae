"""`micmon --help` start-up; `micmon predict` and `evaluate` on a 60-minute recording vs a bare decode.

    .venv/bin/python bench/cli_bench.py [--minutes 60] [--runs 10] [--repeats 3]

Runs this checkout's CLI (`python -m micmon_cli`, src/ first on PYTHONPATH) in fresh processes
with the DEFAULT features and model: 16 kHz, 2 s windows, 40-band log-mel, and the CNN that
`micmon.training.train` builds for them (trained once on a generated 4-minute recording into
bench/out/default_model, see `_common.default_model`). `micmon predict FILE --model M` (text and
--json, stdout to a file) and `micmon evaluate FOLDER --model M` each run in turn with
`ffmpeg -i FILE -f s16le -ar 16000 -ac 1 -y /dev/null` (A B A B ...), and the ratio is taken pair by
pair; medians are printed. Targets: `micmon --help` median under 0.3 s; predict and evaluate at
least half of ffmpeg's bare decode speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

HELP_TARGET_S = 0.3
PREDICT_TARGET_RATIO = 0.5


def time_help(micmon: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of `micmon --help`, a fresh process each time."""
    walls, cpus = [], []
    for _ in range(runs + 1):
        r = c.run_timed([*micmon, "--help"], cwd=c.OUT, env=env)
        walls.append(r["wall_s"])
        cpus.append(r["cpu_s"])
    return walls[1:], cpus[1:]  # the first run warms the page cache


def check_json(out: Path, labels_file: Path, minutes: int) -> tuple[int, float]:
    """Return (windows printed, share of windows whose label matches labels.json)."""
    truth = json.loads(labels_file.read_text(encoding="utf-8"))
    starts = sorted((int(k[:2]) * 60 + int(k[3:5]), v) for k, v in truth.items())
    n = hits = 0
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("type") != "window":
            continue
        n += 1
        mid = (row["start"] + row["end"]) / 2
        label = [v for s, v in starts if s <= mid][-1]
        hits += row["label"] == label
    return n, hits / n if n else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--runs", type=int, default=10, help="runs of micmon --help")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each predict/evaluate measurement")
    parser.add_argument("--retrain", action="store_true", help="train the default model again")
    args = parser.parse_args()

    micmon, env = c.micmon_command()
    c.OUT.mkdir(parents=True, exist_ok=True)
    helps, help_cpus = time_help(micmon, env, args.runs)
    help_median = statistics.median(helps)
    print(
        c.table(
            f"`micmon --help` wall time ({args.runs} runs; load average {c.load_average()})",
            ["median s", "min s", "max s", "median CPU s", "target", "result"],
            [
                [
                    f"{help_median:.3f}",
                    f"{min(helps):.3f}",
                    f"{max(helps):.3f}",
                    f"{statistics.median(help_cpus):.3f}",
                    f"< {HELP_TARGET_S}",
                    c.verdict(help_median < HELP_TARGET_S),
                ]
            ],
        )
    )

    model = c.default_model(retrain=args.retrain)
    root = c.sample_root(args.minutes)
    folder = root / f"rec{args.minutes}"
    audio = folder / "audio.mp3"
    bare = c.bare_decode_command(audio)
    json_out = c.OUT / "predict.jsonl"
    runs = {
        "micmon predict FILE (text)": ([*micmon, "predict", str(audio), "--model", str(model)], None),
        "micmon predict FILE --json": (
            [*micmon, "predict", str(audio), "--model", str(model), "--json"],
            json_out,
        ),
        "micmon evaluate FOLDER": ([*micmon, "evaluate", str(root), "--model", str(model)], None),
    }
    load_before = c.load_average()
    rows, worst = [], float("inf")
    for name, (cmd, out) in runs.items():
        t0 = time.perf_counter()
        r = c.alternate(cmd, bare, args.repeats, cwd=c.OUT, stdout=out, env=env)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        worst = min(worst, c.median(r["speed"]))
        rows.append(c.ratio_row(name, r))
    windows, agreement = check_json(json_out, folder / "labels.json", args.minutes)
    print(
        c.table(
            f"{args.minutes} min 44.1 kHz mp3 decoded at {c.SAMPLE_RATE} Hz, default log-mel + CNN model; "
            f"each command in turn with the bare decode, {args.repeats} pairs, median (min-max); "
            f"load average {load_before} before, {c.load_average()} after",
            c.RATIO_HEADER,
            rows,
        )
    )
    print(
        c.table(
            "Target",
            ["worst median speed vs bare decode", "target", "result"],
            [[f"{worst:.2f}", f">= {PREDICT_TARGET_RATIO}", c.verdict(worst >= PREDICT_TARGET_RATIO)]],
        )
    )
    print(f"\npredict --json printed {windows} windows, {agreement:.1%} agree with labels.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
