"""Compare feature / model variants on the real-audio corpus (bench/real_corpus.py); not run in CI.

For each variant: windows of the training recordings -> features -> train (the library calls the
CLI's datagen and train make) -> save (model.keras + model.tflite) -> `micmon evaluate
CORPUS/calib --calibrate --max-false-alarms-per-hour X` -> `micmon evaluate CORPUS/test --json`
with the calibrated settings. Figures per variant: window F1 of "alarm", event recall per tier,
false alarms per hour on the alarm-free hour, detection delay, LiteRT ms per window.

Results go to OUT/results.json (one entry per variant, updated as they finish), OUT/table.md and
OUT/tradeoff.png.

Example: python bench/accuracy_bench.py ~/micmon-corpus --out bench/out/accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LABELS = ["alarm", "negative"]
TARGET = "alarm"
RATE = 44100
#: Hop between evaluated windows, as a share of the window (the monitor's default is 0.25;
#: the benchmark uses 0.5 to halve the scoring time of logmel on a shared 2-core machine).
HOP_FRACTION = 0.5
MAX_FALSE_ALARMS_PER_HOUR = 1.0
TIMING_WINDOWS = 300


@dataclass(frozen=True)
class Variant:
    """One feature + model configuration to train and evaluate."""

    name: str
    model_type: str
    spec: dict[str, Any]
    augment: bool = False
    class_weight: str | None = "balanced"
    epochs: int = 15
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: trained by the CLI as a user runs it (`micmon datagen` + `micmon train`, no flags but the
    #: seed) with `audio.sample_rate` from `spec` in its micmon.yaml; the other fields are unused
    cli: bool = False


def _spectrum(**kw: Any) -> dict[str, Any]:
    return {"feature": "spectrum", "scale": "log", "bins": 100, "window_seconds": 2.0, **kw}


def _logmel(**kw: Any) -> dict[str, Any]:
    return {
        "feature": "logmel",
        "scale": "log",
        "mel_bands": 40,
        "window_seconds": 2.0,
        "frame_hop_seconds": 0.010,
        **kw,
    }


#: In order of interest: the expected default first, then the original fixed, then the ablations.
VARIANTS = [
    Variant("logmel-cnn-40-aug", "cnn", _logmel(), augment=True),
    Variant("spectrum-dense-log-100", "dense", _spectrum()),
    Variant("spectrum-dense-linear-100", "dense", _spectrum(scale="linear")),
    Variant("spectrum-dense-log-50", "dense", _spectrum(bins=50)),
    Variant("spectrum-dense-log-200", "dense", _spectrum(bins=200)),
    Variant("spectrum-dense-log-100-1s", "dense", _spectrum(window_seconds=1.0)),
    Variant("logmel-cnn-40-aug-1s", "cnn", _logmel(window_seconds=1.0), augment=True),
    Variant("logmel-cnn-40", "cnn", _logmel()),
    Variant("logmel-cnn-40-aug-noweights", "cnn", _logmel(), augment=True, class_weight=None),
    Variant("logmel-cnn-64-hop20ms-aug", "cnn", _logmel(mel_bands=64, frame_hop_seconds=0.020), augment=True),
    Variant(
        "logmel-cnn-40-aug-gain20",
        "cnn",
        _logmel(),
        augment=True,
        extra={"gain_db": 20.0},
        notes="random gain +/- 20 dB instead of 6",
    ),
    # the CLI's defaults of the day (issue 8's thirty-sixth round): 16 kHz keeps 0.4 % of this alarm
    Variant("cli-defaults", "", {"window_seconds": 2.0, "sample_rate": 16000}, cli=True),
    Variant("cli-defaults-44k", "", {"window_seconds": 2.0, "sample_rate": 44100}, cli=True),
]


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_WINDOW_CACHE: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def training_windows(corpus: Path, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Return int16 windows (hop = window / 2) and class indices of the training recordings."""
    from micmon.audio import AudioDirectory, AudioFile

    if window not in _WINDOW_CACHE:
        audio, classes = [], []
        for folder in AudioDirectory.scan(corpus / "train"):
            with AudioFile(folder, window_seconds=window, sample_rate=RATE, hop=window / 2) as source:
                for seg in source:
                    if seg.label in LABELS:
                        audio.append(seg.audio)
                        classes.append(LABELS.index(seg.label))
        _WINDOW_CACHE[window] = (np.stack(audio), np.asarray(classes))
    return _WINDOW_CACHE[window]


def train(variant: Variant, corpus: Path, model_dir: Path, seed: int) -> dict[str, Any]:
    """Train and save one variant through `micmon.training.train` (what `micmon train` runs)."""
    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec, compute_batch
    from micmon.training import TrainingOptions
    from micmon.training import train as train_model

    spec = FeatureSpec(sample_rate=RATE, **variant.spec)
    audio, classes = training_windows(corpus, spec.window_seconds)
    started = time.perf_counter()
    features = compute_batch(audio, spec)
    data = Dataset(features, classes, labels=LABELS, spec=spec, name="corpus")
    options = TrainingOptions(
        model_type=variant.model_type,
        epochs=variant.epochs,
        batch_size=32,
        validation_split=0.15,
        augment=variant.augment,
        seed=seed,
        class_weight=variant.class_weight or "none",
        **{f"augment_{k}": v for k, v in variant.extra.items()},
    )
    result = train_model([data], options)
    seconds = time.perf_counter() - started
    result.save(model_dir, overwrite=True)
    return {
        "train_windows": int(sum(result.class_counts.values()) * 0.85),
        "validation_accuracy": result.report["accuracy"],
        "train_seconds": round(seconds, 1),
        "params": int(result.model.keras_model.count_params()),
    }


def train_cli(variant: Variant, corpus: Path, model_dir: Path, seed: int) -> dict[str, Any]:
    """Train one variant with `micmon datagen` + `micmon train` as a user runs them."""
    work = model_dir.parent / f"{variant.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "micmon.yaml"
    config.write_text(f"audio:\n  sample_rate: {variant.spec['sample_rate']}\n")
    exe = str(Path(sys.executable).with_name("micmon"))
    started = time.perf_counter()
    for args in (
        ["datagen", str(corpus / "train"), str(work / "data"), "--force"],
        ["train", str(work / "data"), str(model_dir), "--seed", str(seed), "--force"],
    ):
        result = subprocess.run(
            [exe, "--config", str(config), *args], capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise RuntimeError(f"micmon {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
        (work / f"{args[0]}.log").write_text(result.stdout + result.stderr)
    from micmon.model.model import read_metadata

    metrics = read_metadata(model_dir).get("metrics") or {}
    keras = model_dir / "model.keras"
    return {
        "validation_accuracy": metrics.get("accuracy"),
        "train_seconds": round(time.perf_counter() - started, 1),
        "params": _keras_params(keras) if keras.exists() else None,
    }


def _keras_params(path: Path) -> int:
    """Return the parameter count of a saved Keras model."""
    from micmon.model import Model

    return int(Model.load(path.parent, backend="keras").keras_model.count_params())


def litert_timing(model_dir: Path) -> dict[str, float]:
    """Return LiteRT ms per window (one window per call) and feature ms per window."""
    from micmon.features import compute_batch
    from micmon.model import Model

    model = Model.load(model_dir)
    spec = model.spec
    assert spec is not None
    rng = np.random.default_rng(0)
    windows = (rng.standard_normal((32, spec.window_samples)) * 3000).astype(np.int16)
    t = time.perf_counter()
    for _ in range(4):
        feats = compute_batch(windows, spec)
    feature_ms = (time.perf_counter() - t) / (4 * len(windows)) * 1000
    one = feats[:1]
    for _ in range(20):
        model.scores(one)
    t = time.perf_counter()
    for _ in range(TIMING_WINDOWS):
        model.scores(one)
    infer_ms = (time.perf_counter() - t) / TIMING_WINDOWS * 1000
    return {"litert_ms_per_window": round(infer_ms, 3), "feature_ms_per_window": round(feature_ms, 3)}


def micmon(*args: str) -> dict[str, Any]:
    """Run the micmon CLI with --json; return its report."""
    exe = Path(sys.executable).with_name("micmon")
    result = subprocess.run([str(exe), *args, "--json"], capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"micmon {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def tier_of(path: str) -> str:
    """Return the test tier of a recording path (easy, medium, hard or quiet)."""
    parts = Path(path).parts
    return parts[parts.index("test") + 1]


def summarise(test: dict[str, Any]) -> dict[str, Any]:
    """Return recall per tier and false alarms per hour on the alarm-free recording."""
    tiers: dict[str, dict[str, float]] = {}
    for rec in test["recordings"]:
        t = tiers.setdefault(
            tier_of(rec["path"]), {"events": 0, "found": 0, "false_alarms": 0, "seconds": 0.0}
        )
        for key in ("events", "found", "false_alarms", "seconds"):
            t[key] += rec[key]
    out: dict[str, Any] = {}
    for name, t in tiers.items():
        if t["events"]:
            out[f"recall_{name}"] = round(t["found"] / t["events"], 3)
        out[f"false_alarms_{name}"] = int(t["false_alarms"])
    quiet = tiers.get("quiet")
    if quiet:
        out["false_alarms_per_hour_quiet"] = round(quiet["false_alarms"] / (quiet["seconds"] / 3600), 2)
    overall = test["overall"]
    out.update(
        {
            "window_f1": overall["labels"][TARGET]["f1"],
            "window_accuracy": overall["window_accuracy"],
            "event_recall": overall["event_recall"],
            "events": overall["events"],
            "false_alarms_per_hour": overall["false_alarms_per_hour"],
            "median_delay": overall["median_delay"],
            "worst_delay": overall["worst_delay"],
        }
    )
    return out


def run_variant(
    variant: Variant,
    corpus: Path,
    out: Path,
    seed: int,
    budget: float,
    hop_fraction: float,
    reuse: bool = False,
) -> dict[str, Any]:
    """Train, calibrate and test one variant; return its row."""
    model_dir = out / "models" / variant.name
    log(f"{variant.name}: training")
    row: dict[str, Any] = {
        "variant": variant.name,
        "model_type": variant.model_type,
        **variant.spec,
        "augment": variant.augment,
        "class_weight": variant.class_weight or "none",
    }
    meta = model_dir / "micmon.json"
    if reuse and meta.exists() and "bench" in json.loads(meta.read_text()):
        log(f"{variant.name}: reusing the trained model")
        row.update(json.loads(meta.read_text())["bench"])
    else:
        figures = (train_cli if variant.cli else train)(variant, corpus, model_dir, seed)
        from micmon.model import Model

        Model.update_metadata(model_dir, bench=figures)
        row.update(figures)
    row.update(litert_timing(model_dir))
    hop = variant.spec["window_seconds"] * hop_fraction
    row["hop_seconds"] = hop
    log(f"{variant.name}: calibrating on calib/ (hop {hop:g} s)")
    started = time.perf_counter()
    calib = micmon(
        "evaluate",
        str(corpus / "calib"),
        "--model",
        str(model_dir),
        "--hop",
        str(hop),
        "--calibrate",
        "--max-false-alarms-per-hour",
        str(budget),
    )
    cal = calib["calibration"]
    row["detector"] = {k: calib["detector"][k] for k in ("thresholds", "k", "n", "m")}
    row["calib_met_budget"] = cal["met_budget"]
    row["calib_recall"] = cal["event_recall"]
    row["calib_tradeoff"] = cal["tradeoff"]
    log(f"{variant.name}: testing on test/")
    plots = out / "plots" / variant.name
    test = micmon("evaluate", str(corpus / "test"), "--model", str(model_dir), "--plot", str(plots))
    row["evaluate_seconds"] = round(time.perf_counter() - started, 1)
    row.update(summarise(test))
    log(
        f"{variant.name}: done: recall {row['event_recall']}, "
        f"{row.get('false_alarms_per_hour_quiet')} false alarms/h on the quiet hour"
    )
    return row


COLUMNS = [
    ("variant", "variant"),
    ("params", "params"),
    ("window_f1", "window F1"),
    ("recall_easy", "recall easy"),
    ("recall_medium", "recall medium"),
    ("recall_hard", "recall hard"),
    ("recall_very-hard", "recall -20 dB"),
    ("recall_extreme", "recall -30 dB"),
    ("event_recall", "recall all"),
    ("false_alarms_per_hour_quiet", "FA/h quiet hour"),
    ("median_delay", "median delay s"),
    ("worst_delay", "worst delay s"),
    ("litert_ms_per_window", "LiteRT ms/window"),
    ("feature_ms_per_window", "features ms/window"),
]


def table(rows: list[dict[str, Any]]) -> str:
    """Return the results as a Markdown table."""
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, sep]
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Plot event recall per tier, false alarms on the quiet hour and median delay per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = [
        ("recall_easy", "+6 dB"),
        ("recall_medium", "0 dB"),
        ("recall_hard", "-10 dB"),
        ("recall_very-hard", "-20 dB"),
        ("recall_extreme", "-30 dB"),
    ]
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(
        1,
        3,
        figsize=(13, 0.45 * len(rows) + 1.8),
        dpi=100,
        sharey=True,
        gridspec_kw={"width_ratios": [3, 1, 1]},
    )
    height = 0.8 / len(tiers)
    for i, (key, label) in enumerate(tiers):
        axes[0].barh(y + (i - 2) * height, [r.get(key) or 0.0 for r in rows], height, label=label)
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel("event recall (test, calibrated)")
    axes[0].legend(fontsize="x-small", loc="lower right", title="alarm vs speech", title_fontsize="x-small")
    axes[1].barh(y, [r.get("false_alarms_per_hour_quiet") or 0.0 for r in rows], color="tab:red")
    axes[1].axvline(MAX_FALSE_ALARMS_PER_HOUR, color="black", ls="--", lw=0.8)
    axes[1].set_xlabel("false alarms / hour (quiet hour)")
    axes[2].barh(y, [r.get("median_delay") or 0.0 for r in rows], color="tab:gray")
    axes[2].set_xlabel("median delay (s)")
    axes[0].set_yticks(y, names, fontsize="small")
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Run the variants and write results.json, table.md and tradeoff.png."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "corpus",
        type=Path,
        nargs="?",
        default=None,
        help="corpus folder (default: bench/out/corpus, built if missing)",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "accuracy")
    p.add_argument("--variants", default="", help="comma-separated names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override every variant's epochs")
    p.add_argument("--max-false-alarms-per-hour", type=float, default=MAX_FALSE_ALARMS_PER_HOUR)
    p.add_argument(
        "--hop-fraction",
        type=float,
        default=HOP_FRACTION,
        help="evaluation hop as a share of the window (monitor default: 0.25)",
    )
    p.add_argument(
        "--reuse", action="store_true", help="reuse models already trained in OUT/models (same variant names)"
    )
    args = p.parse_args(argv)
    if args.corpus is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import real_corpus

        args.corpus = real_corpus.DEFAULT_OUT
        real_corpus.main([str(args.corpus)])
    wanted = [v for v in args.variants.split(",") if v]
    variants = [v for v in VARIANTS if not wanted or v.name in wanted]
    if args.epochs:
        from dataclasses import replace

        variants = [replace(v, epochs=args.epochs) for v in variants]
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    for variant in variants:
        try:
            results[variant.name] = run_variant(
                variant,
                args.corpus,
                args.out,
                args.seed,
                args.max_false_alarms_per_hour,
                args.hop_fraction,
                args.reuse,
            )
        except Exception as exc:  # noqa: BLE001 - one failing variant must not stop the others
            log(f"{variant.name}: FAILED: {exc}")
            results[variant.name] = {"variant": variant.name, "error": str(exc)}
        results_path.write_text(json.dumps(results, indent=1) + "\n")
    rows = [results[v.name] for v in VARIANTS if v.name in results]
    (args.out / "table.md").write_text(table(rows))
    plot([r for r in rows if "error" not in r], args.out / "tradeoff.png")
    print(table(rows))


if __name__ == "__main__":
    main()
