"""Per-window prediction latency of the README network (100 -> 200 relu -> 75 relu -> 2 softmax).

    .venv/bin/python bench/predict_latency.py [--calls 2000] [--original-calls 1000]

Single-window calls, timed one by one (median and p99), after a warm-up:
- LiteRT (`Model.load(dir)`, in an interpreter where TensorFlow is never imported): `.scores()` on
  one feature vector, and `.predict(segment)` on one 2 s window (features included);
- Keras (`Model.load(dir, backend="keras")`): the same two calls;
- the original micmon's call, Keras `model.predict(x)` on one feature vector.
Batch throughput: `predict_proba()` on 512 windows of 2 s (features included) and `.scores()` on 512
feature vectors, in windows per second. Target: LiteRT `.scores()` median under 0.1 ms.
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

MODEL_DIR = c.OUT / "latency_model"
TARGET_MS = 0.1
BATCH = 512
WARMUP = 50


def _train() -> dict:
    """Save the README network, fitted for one epoch on random features (weights don't matter)."""
    import numpy as np
    from keras import layers

    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec
    from micmon.model import Model

    spec = FeatureSpec(low_freq=c.LOW_FREQ, high_freq=c.HIGH_FREQ, bins=c.BINS)
    rng = np.random.default_rng(0)
    samples = rng.random((256, c.BINS), dtype=np.float32)
    classes = (samples[:, 40] > 0.5).astype(np.int64)
    data = Dataset(
        samples,
        classes,
        labels=["negative", "positive"],
        spec=spec,
        low_freq=c.LOW_FREQ,
        high_freq=c.HIGH_FREQ,
    )
    model = Model(
        [
            layers.Input(shape=(c.BINS,)),
            layers.Dense(2 * c.BINS, activation="relu"),
            layers.Dense(int(0.75 * c.BINS), activation="relu"),
            layers.Dense(2, activation="softmax"),
        ],
        labels=["negative", "positive"],
        low_freq=c.LOW_FREQ,
        high_freq=c.HIGH_FREQ,
    )
    model.fit(data, epochs=1)
    model.save(MODEL_DIR, overwrite=True)
    return {"saved": str(MODEL_DIR)}


def _time_calls(fn, calls: int) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(WARMUP):
        fn()
    times = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        fn()
        times.append((clock() - t0) / 1e6)
    return {"median_ms": statistics.median(times), "p99_ms": c.percentile(times, 99), "calls": calls}


def _throughput(fn, n: int, repeats: int = 20) -> float:  # type: ignore[no-untyped-def]
    fn()
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return n / statistics.median(walls)


def _measure(backend: str, calls: int, original_calls: int) -> dict:
    import numpy as np

    from micmon.audio import AudioSegment
    from micmon.features import compute_batch
    from micmon.model import Model

    model = Model.load(MODEL_DIR, backend=backend)
    spec = model.spec
    rng = np.random.default_rng(1)
    windows = (rng.standard_normal((BATCH, spec.window_samples)) * 3000).astype(np.int16)
    features = compute_batch(windows, spec)
    one = features[:1]
    segment = AudioSegment(windows[0], spec.sample_rate)
    result: dict = {"backend": model.backend}
    result["scores"] = _time_calls(lambda: model.scores(one), calls)
    result["predict"] = _time_calls(lambda: model.predict(segment), calls)
    result["batch_proba_wps"] = _throughput(lambda: model.predict_proba(windows), BATCH)
    result["batch_scores_wps"] = _throughput(lambda: model.scores(features), BATCH)
    if backend == "litert":
        interp = model.runner._interpreter  # the bare interpreter, for the wrapper's overhead
        inp, out = model.runner._input["index"], model.runner._output["index"]
        model.scores(one)  # leaves the interpreter sized for one window

        def bare() -> None:
            interp.set_tensor(inp, one)
            interp.invoke()
            interp.get_tensor(out)

        result["bare_invoke"] = _time_calls(bare, calls)
        result["tensorflow_imported"] = "tensorflow" in sys.modules
    else:
        keras_model = model.keras_model
        result["original_predict"] = _time_calls(lambda: keras_model.predict(one, verbose=0), original_calls)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="single-window calls per measurement")
    parser.add_argument(
        "--original-calls", type=int, default=1000, help="calls of Keras model.predict() (about 30 ms each)"
    )
    parser.add_argument("--worker", nargs=1, metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode = args.worker[0]
        out = _train() if mode == "train" else _measure(mode, args.calls, args.original_calls)
        print(json.dumps(out))
        return 0

    here = Path(__file__)
    c.OUT.mkdir(parents=True, exist_ok=True)
    c.run_worker(here, "train")
    calls = ("--calls", str(args.calls), "--original-calls", str(args.original_calls))
    lite = c.run_worker(here, "litert", *calls)
    keras = c.run_worker(here, "keras", *calls)

    def row(name: str, m: dict) -> list[str]:
        return [name, f"{m['median_ms']:.4f}", f"{m['p99_ms']:.4f}", str(m["calls"])]

    print(
        c.table(
            "Per-window latency, README network (100 -> 200 relu -> 75 relu -> 2 softmax), 1 thread",
            ["call", "median ms", "p99 ms", "calls"],
            [
                row("LiteRT Model.scores(1 window)", lite["scores"]),
                row("LiteRT Model.predict(segment), features included", lite["predict"]),
                row("LiteRT bare set_tensor/invoke/get_tensor", lite["bare_invoke"]),
                row("Keras Model.scores(1 window)", keras["scores"]),
                row("Keras Model.predict(segment), features included", keras["predict"]),
                row("original: Keras model.predict(x) (1 window)", keras["original_predict"]),
            ],
        )
    )
    print(
        c.table(
            f"Batch throughput, {BATCH} windows of 2 s (median of 20)",
            ["call", "LiteRT windows/s", "Keras windows/s"],
            [
                [
                    "predict_proba(windows), features included",
                    f"{lite['batch_proba_wps']:.0f}",
                    f"{keras['batch_proba_wps']:.0f}",
                ],
                ["scores(features)", f"{lite['batch_scores_wps']:.0f}", f"{keras['batch_scores_wps']:.0f}"],
            ],
        )
    )
    median = lite["scores"]["median_ms"]
    print(
        c.table(
            "Target",
            ["LiteRT scores median ms", "target", "result"],
            [[f"{median:.4f}", f"< {TARGET_MS}", c.verdict(median < TARGET_MS)]],
        )
    )
    print(f"\nTensorFlow imported in the LiteRT process: {lite['tensorflow_imported']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
