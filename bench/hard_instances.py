"""Which recordings of the sound the hard benchmark's saved networks find (issue 8); not in CI.

Every test event of the hard corpus is made of 1-6 calls, each a copy of one of the task's
test-side recordings of the sound (its *instances*: for the wolf, growl-4, hit-2 and die-3, none
of them heard in training). For each run `hard_bench.py` saved under OUT, this script scores the
task's test event recordings as `monitor` would, detects with the settings the CLI calibrated for
that network (`cli_remix_calibration`: nothing is calibrated again) and prints, per set of
instances an event is made of, how many such events were found and the median of their highest
score: what the network hears as the sound and what it does not. The totals reproduce
`cli_remix_calibration.event_recall`.

With `--alone`, each network also hears every recording of the task's sounds (the training
side's and the test side's instances) and of its lookalikes alone: no talk, no other sound, at
the talker's level (-26 dBFS active) over the corpus's noise floor, starting at a tenth and at
two fifths of a window; it prints the sound's mean score and the label the network picks. A call
the network misses alone is a new instance it does not recognise; one it hears alone but misses
in the corpus is lost to the talk, the level or the calibrated threshold.

With `--misses`, it also lists every test event the network does not find, with its recording's
format and rate, the event's target-to-speech ratio and its peak score.

Example: python bench/hard_instances.py --out bench/out/s37_w0 bench/out/s37_w1
         python bench/hard_instances.py --out bench/out/s37_s1 --alone
         python bench/hard_instances.py --out bench/out/s39_c0 --misses
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
import hard_corpus  # noqa: E402

#: Where `--alone` starts a call in the window (shares of the window).
ALONE_OFFSETS = (0.1, 0.4)


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


def run_model(out: Path, key: str, row: dict[str, Any]) -> Any:
    """Load the network a saved run trained; stop if it has no feature spec."""
    model = hard_bench.saved_model(out, row)
    if model.spec is None:
        raise SystemExit(f"{out}: the saved model of {key} has no feature spec")
    return model


def run_instances(
    corpus: Path, model: Any, row: dict[str, Any], misses: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Return {label/instance set: found, events, median peak score} for one saved run's `model`.

    With `misses`, each test event it does not find is appended to it: its recording, format, rate,
    start, target-to-speech ratio, number of calls and peak score.
    """
    from micmon.detect import DetectorSettings
    from micmon.evaluate import evaluate_scores, score_recording

    manifest = json.loads((corpus / "manifest.json").read_text())
    window = model.spec.window_seconds
    settings = DetectorSettings.from_dict(row["cli_remix_calibration"]["detector"])
    figures: dict[str, list[Any]] = {}
    tests = manifest["tasks"][row["task"]]["test"]
    events = [event for rec in tests for event in rec["events"]]
    prefixes = {e["label"]: common_prefix([x for x in events if x["label"] == e["label"]]) for e in events}
    for rec in tests:
        scored = score_recording(corpus / rec["path"], model, hop=row["hop_seconds"])
        detections = evaluate_scores([scored], settings).recordings[0].detections
        for event in rec["events"]:
            found = hard_bench.event_found(detections, event)
            inside = (scored.times + window > event["start"]) & (scored.times < event["end"])
            column = scored.labels.index(event["label"])
            peak = float(scored.scores[inside, column].max()) if inside.any() else 0.0
            name = f"{event['label']}/{instance_set(event, prefixes[event['label']])}"
            entry = figures.setdefault(name, [0, 0, []])
            entry[0] += int(found)
            entry[1] += 1
            entry[2].append(peak)
            if misses is not None and not found:
                misses.append(
                    {
                        "recording": rec["path"],
                        "format": rec["format"],
                        "rate": rec["rate"],
                        "start": event["start"],
                        "snr_db": event["snr_db"],
                        "calls": len(event["instances"]),
                        "peak": peak,
                    }
                )
    return {
        name: {"found": f, "events": n, "median_peak": round(float(np.median(peaks)), 4)}
        for name, (f, n, peaks) in sorted(figures.items())
    }


def alone_scores(model: Any, task: str) -> list[dict[str, Any]]:
    """Score every instance of the task's sounds and every lookalike alone; one row per recording."""
    from micmon.features import compute_batch

    spec = model.spec
    n = spec.window_samples
    params = hard_corpus.Params()
    floor = 10 ** (params.noise_dbfs / 20) * np.random.default_rng(0).standard_normal(n)
    definition = hard_corpus.TASKS[task]
    played: list[tuple[str, Path, str]] = []
    for label, (train, test) in definition.classes.items():
        played += [(label, path, "train") for path in train] + [(label, path, "test") for path in test]
    played += [("", path, "lookalike") for path in definition.lookalikes]
    played += [("", path, "lookalike, test only") for path in definition.test_only]
    rows = []
    for label, path, side in played:
        call = hard_corpus.at_level(hard_corpus.decode(path, spec.sample_rate), params.speech_dbfs)
        windows = []
        for offset in ALONE_OFFSETS:
            window = floor.copy()
            start = int(offset * n)
            part = call[: n - start]
            window[start : start + len(part)] += part
            windows.append(np.clip(window * 32767, -32768, 32767).astype(np.int16))
        scores = model.scores(compute_batch(np.stack(windows), spec))
        targets = [label] if label else [t for t in model.labels if t != hard_bench.BACKGROUND]
        best = max(targets, key=lambda t: float(scores[:, model.labels.index(t)].mean()))
        rows.append(
            {
                "label": label or "(lookalike)",
                "recording": path.name,
                "side": side,
                "seconds": round(len(call) / spec.sample_rate, 2),
                "class": best,
                "score": round(float(scores[:, model.labels.index(best)].mean()), 4),
                "picked": [model.labels[i] for i in scores.argmax(axis=1)],
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print, for every saved run under each OUT, what it finds per set of instances."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hard_bench.add_saved_run_arguments(p)
    p.add_argument("--alone", action="store_true", help="also score each recording of the sounds alone")
    p.add_argument("--misses", action="store_true", help="also list every test event not found")
    args = p.parse_args(argv)
    for out in args.out:
        for key, row in hard_bench.saved_results(p, out).items():
            corpus = hard_bench.run_corpus(args.corpus, out, row)
            model = run_model(out, key, row)
            misses: list[dict[str, Any]] = []
            figures = run_instances(corpus, model, row, misses)
            found = sum(v["found"] for v in figures.values())
            events = sum(v["events"] for v in figures.values())
            print(f"{out} {key}: {found} of {events} events found as the CLI calibrates")
            for name, v in figures.items():
                counts = f"{v['found']:3d} / {v['events']:3d}"
                print(f"  {name:40s} {counts}   median peak score {v['median_peak']:.3f}")
            if args.misses:
                print("  missed: recording, format, rate, start, target-to-speech dB, calls, peak score")
                for m in misses:
                    print(
                        f"    {m['recording']:24s} {m['format']:4s} {m['rate']:6d} Hz {m['start']:7.1f} s"
                        f"  {m['snr_db']:6.1f} dB  {m['calls']} calls  peak {m['peak']:.3f}"
                    )
            if args.alone:
                print("  alone: each recording, its sound's score (a lookalike: the likeliest sound's)")
                for r in alone_scores(model, row["task"]):
                    picked = "/".join(r["picked"])
                    print(
                        f"    {r['label']:12s} {r['recording']:26s} {r['side']:21s} {r['seconds']:5.2f} s"
                        f"  {r['class']} {r['score']:.3f}  (picked {picked})"
                    )


if __name__ == "__main__":
    main()
