"""CPU per scored window of a saved model: features + LiteRT, from scratch and streamed (issue 8).

    .venv/bin/python bench/window_cost.py [MODEL_DIR] [--windows 400]

MODEL_DIR defaults to the hard benchmark's chime model of seed 0 (bench/hard_bench.py's output).

Scores noise windows at a quarter-window hop one at a time, as `monitor` does: "scratch"
computes each window's features alone (`compute_batch`), "streamed" shares frames between
overlapping windows (`WindowFeatures`), "LiteRT alone" times only the network on features computed
beforehand (the issue's "< 1 ms per window through LiteRT" for capacity). Prints the median and
mean CPU milliseconds per window, twice each in alternation (the machine's load shows as a
difference between the two).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hard_bench  # noqa: E402


def main() -> None:
    """Time features + LiteRT per window of the model given on the command line."""
    from micmon.features import WindowFeatures, compute_batch
    from micmon.model import Model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = hard_bench.model_path(hard_bench.OUT, hard_bench.DEFAULT_VARIANT, "chime", 0)
    p.add_argument("model", nargs="?", default=str(default))
    p.add_argument("--windows", type=int, default=400)
    args = p.parse_args()
    model = Model.load(args.model)
    spec = model.spec
    hop = spec.window_samples // 4
    rng = np.random.default_rng(0)
    audio = (rng.normal(size=spec.window_samples + hop * args.windows) * 3000).astype(np.int16)
    windows = [audio[i * hop : i * hop + spec.window_samples] for i in range(args.windows)]
    print(f"model {args.model}: backend {model.backend}, {spec.sample_rate} Hz, {spec.feature} {spec.shape}")

    features = [compute_batch(window[None], spec) for window in windows]

    def run(kind: str) -> tuple[float, float]:
        frames = WindowFeatures(spec)
        times = []
        for i, window in enumerate(windows):
            started = time.process_time()
            if kind == "LiteRT alone":
                x = features[i]  # computed beforehand: the network alone is timed
            elif kind == "scratch":
                x = compute_batch(window[None], spec)
            else:
                x = frames.compute(window[None], [i * hop])
            model.scores(x)
            times.append(time.process_time() - started)
        kept = np.asarray(times[20:]) * 1000
        return float(np.median(kept)), float(np.mean(kept))

    print("| front end | median CPU ms per window | mean |\n|---|---|---|")
    for kind in ("scratch", "streamed", "LiteRT alone") * 2:
        median, mean = run(kind)
        print(f"| {kind} | {median:.3f} | {mean:.3f} |")


if __name__ == "__main__":
    main()
