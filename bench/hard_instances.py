"""Which recordings of the sound the hard benchmark's saved networks find (issue 8); not in CI.

Every test event of the hard corpus is made of 1-6 calls, each a copy of one of the task's
test-side recordings of the sound (its *instances*: for the wolf, growl-4, hit-2 and die-3, none
of them heard in training). For each run `hard_bench.py` saved under OUT, this script scores the
task's test event recordings as `monitor` would, detects with the settings the CLI calibrated for
that network (`cli_remix_calibration`: nothing is calibrated again) and prints, per set of
instances an event is made of, how many such events were found and the median of their highest
score: what the network hears as the sound and what it does not. The totals reproduce
`cli_remix_calibration.event_recall`.

Example: python bench/hard_instances.py --out bench/out/s37_w0 bench/out/s37_w1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

import hard_bench  # noqa: E402


def instance_set(event: dict[str, Any], prefix: str) -> str:
    """The instances an event is made of, as one name ("die-3+growl-4": file stems less `prefix`)."""
    return "+".join(sorted({Path(name).stem[len(prefix) :] for name in event["instances"]}))


def common_prefix(events: Sequence[dict[str, Any]]) -> str:
    """The start ("wolf-") that the file stems of every instance of `events` share, up to a dash."""
    stems = sorted({Path(name).stem for event in events for name in event["instances"]})
    if len(stems) == 1:  # one recording: its name less the first word ("bat-hit-3" -> "hit-3")
        first, dash, _ = stems[0].partition("-")
        return first + dash if dash else ""
    shared = os.path.commonprefix(stems)
    return shared[: shared.rfind("-") + 1]


def run_instances(corpus: Path, out: Path, key: str, row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return {label/instance set: found, events, median peak score} for one saved run."""
    from micmon.detect import DetectorSettings
    from micmon.evaluate import evaluate_scores, score_recording
    from micmon.model import Model

    variant, task, seed = key.split("/")
    manifest = json.loads((corpus / "manifest.json").read_text())
    model = Model.load(hard_bench.model_path(out, variant, task, int(seed)))
    window = model.spec.window_seconds if model.spec is not None else 0.0
    settings = DetectorSettings.from_dict(row["cli_remix_calibration"]["detector"])
    figures: dict[str, list[Any]] = {}
    tests = manifest["tasks"][task]["test"]
    events = [event for rec in tests for event in rec["events"]]
    prefixes = {e["label"]: common_prefix([x for x in events if x["label"] == e["label"]]) for e in events}
    for rec in tests:
        scored = score_recording(corpus / rec["path"], model, hop=row["hop_seconds"])
        detections = evaluate_scores([scored], settings).recordings[0].detections
        for event in rec["events"]:
            found = any(
                d.label == event["label"] and d.start < event["end"] and event["start"] < d.end
                for d in detections
            )
            inside = (scored.times + window > event["start"]) & (scored.times < event["end"])
            column = scored.labels.index(event["label"])
            peak = float(scored.scores[inside, column].max()) if inside.any() else 0.0
            name = f"{event['label']}/{instance_set(event, prefixes[event['label']])}"
            entry = figures.setdefault(name, [0, 0, []])
            entry[0] += int(found)
            entry[1] += 1
            entry[2].append(peak)
    return {
        name: {"found": f, "events": n, "median_peak": round(float(np.median(peaks)), 4)}
        for name, (f, n, peaks) in sorted(figures.items())
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print, for every saved run under each OUT, what it finds per set of instances."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, nargs="+", required=True, help="hard_bench.py output folders")
    p.add_argument("--corpus", type=Path, default=None, help="the corpus (default: OUT/../hard/<digest>)")
    args = p.parse_args(argv)
    for out in args.out:
        if not (out / "results.json").is_file():
            p.error(f"--out {out}: no results.json there (not a hard_bench.py output folder)")
        for key, row in json.loads((out / "results.json").read_text()).items():
            corpus = args.corpus or out.parent / "hard" / row["corpus"]
            figures = run_instances(corpus, out, key, row)
            found = sum(v["found"] for v in figures.values())
            events = sum(v["events"] for v in figures.values())
            print(f"{out} {key}: {found} of {events} events found as the CLI calibrates")
            for name, v in figures.items():
                counts = f"{v['found']:3d} / {v['events']:3d}"
                print(f"  {name:40s} {counts}   median peak score {v['median_peak']:.3f}")


if __name__ == "__main__":
    main()
