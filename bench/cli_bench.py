"""`micmon --help` start-up time and `micmon predict` on a 60-minute recording vs ffmpeg's bare decode.

    .venv/bin/python bench/cli_bench.py [--minutes 60] [--runs 10]

Trains a tiny model first with the library (README network on a generated 4-minute recording,
written to bench/out/model), then times `micmon predict FILE --model bench/out/model` (text and
--json output, stdout to a file) against `ffmpeg -i FILE -f s16le -ar 44100 -ac 1 - > /dev/null`.
Targets: `micmon --help` median under 0.3 s; predict at least half of ffmpeg's bare decode speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

MODEL_DIR = c.OUT / "model"
HELP_TARGET_S = 0.3
PREDICT_TARGET_RATIO = 0.5


def micmon_bin() -> str:
    """The `micmon` entry point next to this interpreter (the project's .venv), else on PATH."""
    local = Path(sys.executable).parent / "micmon"
    found = str(local) if local.exists() else shutil.which("micmon")
    if found is None:
        sys.exit("micmon not found: install the project (make venv)")
    return found


def _train() -> dict:
    """Datagen + README network on a short generated recording, saved to bench/out/model."""
    import tempfile

    from keras import layers

    from micmon.audio import AudioFile
    from micmon.dataset import Dataset, DatasetWriter
    from micmon.model import Model

    folder = c.recording(4, "train4")
    with tempfile.TemporaryDirectory(dir=c.OUT) as tmp:
        npz = Path(tmp) / "train4.npz"
        with (
            AudioFile(
                folder / "audio.mp3",
                folder / "labels.json",
                window_seconds=c.WINDOW,
                sample_rate=c.SAMPLE_RATE,
            ) as src,
            DatasetWriter(npz, low_freq=c.LOW_FREQ, high_freq=c.HIGH_FREQ, bins=c.BINS) as writer,
        ):
            for sample in src:
                writer += sample
        data = Dataset.load(npz, validation_split=0.3)
    labels = data.labels or ["negative", "positive"]
    model = Model(
        [
            layers.Input(shape=(c.BINS,)),
            layers.Dense(2 * c.BINS, activation="relu"),
            layers.Dense(int(0.75 * c.BINS), activation="relu"),
            layers.Dense(len(labels), activation="softmax"),
        ],
        labels=labels,
        low_freq=data.low_freq,
        high_freq=data.high_freq,
    )
    model.fit(data, epochs=10)
    loss, accuracy = model.evaluate(data)[:2]
    model.save(MODEL_DIR, overwrite=True)
    return {"windows": len(data), "val_accuracy": accuracy}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    env["NO_COLOR"] = "1"
    return env


def time_help(micmon: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of `micmon --help`, a fresh process each time."""
    walls, cpus = [], []
    for _ in range(runs + 1):
        before = c.cpu_seconds()[1]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [micmon, "--help"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=c.OUT,
            env=_env(),
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        cpus.append(c.cpu_seconds()[1] - before)
        if proc.returncode != 0:
            sys.exit(f"micmon --help failed: {proc.stderr.decode(errors='replace').strip()}")
    return walls[1:], cpus[1:]  # the first run warms the page cache


def predict_available(micmon: str) -> bool:
    """Whether this install has a `micmon predict` subcommand."""
    proc = subprocess.run(
        [micmon, "predict", "--help"], capture_output=True, cwd=c.OUT, env=_env(), check=False
    )
    return proc.returncode == 0


def time_predict(micmon: str, audio: Path, json_output: bool) -> tuple[float, float, Path]:
    """Wall and CPU seconds (micmon + its ffmpeg) of one `micmon predict` run, stdout to a file."""
    out = c.OUT / ("predict.jsonl" if json_output else "predict.txt")
    cmd = [micmon, "predict", str(audio), "--model", str(MODEL_DIR)] + (["--json"] if json_output else [])
    before = c.cpu_seconds()[1]
    with open(out, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, cwd=c.OUT, env=_env(), check=False)
        wall = time.perf_counter() - t0
    cpu = c.cpu_seconds()[1] - before
    if proc.returncode != 0:
        sys.exit(
            f"micmon predict failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return wall, cpu, out


def check_json(out: Path, labels_file: Path, minutes: int) -> tuple[int, float]:
    """Return (windows printed, share of windows whose label matches labels.json)."""
    truth = json.loads(labels_file.read_text(encoding="utf-8"))
    starts = sorted((int(k[:2]) * 60 + int(k[3:5]), v) for k, v in truth.items())
    n = hits = 0
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        n += 1
        mid = (row["start"] + row["end"]) / 2
        label = [v for s, v in starts if s <= mid][-1]
        hits += row["label"] == label
    return n, hits / n if n else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--runs", type=int, default=10, help="runs of micmon --help")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each predict measurement")
    parser.add_argument("--worker", nargs=1, metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_train()))
        return 0

    micmon = micmon_bin()
    c.OUT.mkdir(parents=True, exist_ok=True)
    helps, help_cpus = time_help(micmon, args.runs)
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

    if not predict_available(micmon):
        print(
            "\n`micmon predict` is not available in this install yet (no such subcommand); "
            "the predict benchmark was skipped."
        )
        return 0

    trained = c.run_worker(Path(__file__), "train")
    folder = c.recording(args.minutes)
    audio = folder / "audio.mp3"
    audio_seconds = args.minutes * 60.0
    load_before = c.load_average()
    bares, texts, jsons = [], [], []
    for _ in range(args.repeats):  # interleaved, so all see the same load; best of each kept
        bares.append(c.ffmpeg_bare_decode(audio))
        wall, cpu, _ = time_predict(micmon, audio, json_output=False)
        texts.append((wall, cpu))
        wall, cpu, json_out = time_predict(micmon, audio, json_output=True)
        jsons.append((wall, cpu))
    best_bare = min(bares, key=lambda r: r["wall_s"])
    bare, bare_cpu = best_bare["wall_s"], best_bare["cpu_s"]
    (text_wall, text_cpu), (json_wall, json_cpu) = min(texts), min(jsons)
    windows, agreement = check_json(json_out, folder / "labels.json", args.minutes)
    speed_bare = audio_seconds / bare
    rows = [
        [
            "ffmpeg bare decode to s16le (/dev/null)",
            f"{bare:.2f}",
            f"{speed_bare:.0f}",
            "-",
            f"{bare_cpu:.2f}",
        ]
    ]
    for name, wall, cpu in (
        ("micmon predict (text)", text_wall, text_cpu),
        ("micmon predict --json", json_wall, json_cpu),
    ):
        rows.append(
            [
                name,
                f"{wall:.2f}",
                f"{audio_seconds / wall:.0f}",
                f"{audio_seconds / wall / speed_bare:.2f}",
                f"{cpu:.2f}",
            ]
        )
    print(
        c.table(
            f"`micmon predict` on a {args.minutes} min 44.1 kHz mp3 (model: README network, "
            f"{c.BINS} bins; best of {args.repeats}; load average {load_before} before, "
            f"{c.load_average()} after)",
            ["run", "wall s", "audio s / wall s", "ratio to ffmpeg", "CPU s (incl. ffmpeg)"],
            rows,
        )
    )
    ratio = min(bare / text_wall, bare / json_wall)
    print(
        c.table(
            "Target",
            ["worst ratio predict / bare decode", "target", "result"],
            [[f"{ratio:.2f}", f">= {PREDICT_TARGET_RATIO}", c.verdict(ratio >= PREDICT_TARGET_RATIO)]],
        )
    )
    print(
        f"\nmodel: trained on {trained['windows']} windows, validation accuracy "
        f"{trained['val_accuracy']:.3f}; predict --json printed {windows} windows, "
        f"{agreement:.1%} agree with labels.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
