"""Deliver the hard benchmark's test recordings in every format and rate to its saved networks (issue 8).

The corpus delivers each test recording in one form (format, sample rate, channels), two recordings
a format, so its recall by format also measures what those two recordings hold: their talk, their
sounds, how many of their events are quiet. This probe holds the content constant: for each network
`hard_bench.py` saved under OUT, every test event recording of its task is encoded again in each
format at each sample rate (the corpus's codecs and settings, and its low-pass cap of 0.45 x the
rate; channels as recorded), scored as `monitor` would and detected with the settings the CLI
calibrated for that network (`cli_remix_calibration`: nothing is calibrated again). It prints event
recall per format (over the rates), per rate (over the formats), each one's spread, and adds them
to OUT/forms.json (a network measured there in the same forms is not measured again). The copies
are made one at a time and removed once scored. Not run in CI.

Example: python bench/hard_forms.py --out bench/out/s35_tc
         python bench/hard_forms.py --out bench/out/s35_tc --formats wav,ogg --rates 16000,48000
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
import hard_bench  # noqa: E402
import hard_corpus  # noqa: E402
from micmon._io import write_text_atomic  # noqa: E402
from micmon.audio.directory import find_audio_file  # noqa: E402

#: The corpus's microphone low-pass never reaches above this share of a recording's rate.
LOWPASS_SHARE = 0.45


def delivered_as(folder: Path, fmt: str, rate: int, scratch: Path) -> Path:
    """Return a sample folder holding `folder`'s recording encoded as `fmt` at `rate` Hz, with its labels."""
    if fmt not in hard_corpus.CODEC_ARGS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(hard_corpus.CODEC_ARGS)}")
    out = scratch / f"{folder.parent.name}_{folder.name}_{fmt}_{rate}"
    out.mkdir(parents=True)
    (out / "labels.json").write_text((folder / "labels.json").read_text())
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(find_audio_file(folder)),
            "-af",
            f"lowpass=f={LOWPASS_SHARE * rate:g}",
            "-ar",
            str(rate),
            *hard_corpus.CODEC_ARGS[fmt],
            str(out / f"audio.{fmt}"),
        ],
        check=True,
    )
    return out


def spread(recall: dict[str, float]) -> float:
    """Return the largest minus the smallest recall of a grouping."""
    return round(max(recall.values()) - min(recall.values()), 4) if recall else 0.0


def form_figures(
    corpus: Path, out: Path, key: str, row: dict[str, Any], formats: Sequence[str], rates: Sequence[int]
) -> dict[str, Any]:
    """Return event recall of one saved network for each (format, rate), and by format and by rate."""
    from micmon.detect import DetectorSettings
    from micmon.evaluate import evaluate_scores, score_recording

    variant, task, seed = row["variant"], row["task"], int(row["seed"])
    model = hard_bench.saved_model(out, row)
    settings = DetectorSettings.from_dict(row["cli_remix_calibration"]["detector"])
    folders = hard_bench.recordings(corpus, task, seed, hard_bench.options(variant))["test_events"]
    found: dict[tuple[str, int], tuple[int, int]] = {}
    for fmt in formats:
        for rate in rates:
            scores = []
            for folder in folders:
                with tempfile.TemporaryDirectory(prefix="hard-forms-") as scratch:
                    copy = delivered_as(folder, fmt, rate, Path(scratch))
                    scores.append(score_recording(copy, model, hop=row["hop_seconds"]))
            events = evaluate_scores(scores, settings).overall
            found[(fmt, rate)] = (events.found, events.runs)
            hard_bench.log(f"{key}: {fmt} at {rate} Hz: {events.found}/{events.runs}")

    def recall(pick: Any) -> float:
        hits = [v for k, v in found.items() if pick(k)]
        return round(sum(f for f, _ in hits) / max(sum(n for _, n in hits), 1), 4)

    by_format = {fmt: recall(lambda k, f=fmt: k[0] == f) for fmt in formats}
    by_rate = {str(rate): recall(lambda k, r=rate: k[1] == r) for rate in rates}
    return {
        "found": {f"{fmt}/{rate}": list(v) for (fmt, rate), v in found.items()},
        "recall_by_format": by_format,
        "format_spread": spread(by_format),
        "recall_by_rate": by_rate,
        "rate_spread": spread(by_rate),
    }


def main(argv: list[str] | None = None) -> None:
    """Deliver every saved network's test recordings in each form; print and save the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hard_bench.add_saved_run_arguments(p)
    p.add_argument("--formats", default=",".join(hard_corpus.FORMATS), help="comma-separated formats")
    p.add_argument("--rates", default=",".join(map(str, hard_corpus.RATES)), help="comma-separated rates, Hz")
    args = p.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if not formats or any(f not in hard_corpus.CODEC_ARGS for f in formats):
        p.error(f"--formats: {args.formats!r}: each must be one of {', '.join(hard_corpus.CODEC_ARGS)}")
    try:
        rates = [int(r) for r in args.rates.split(",") if r]
    except ValueError:
        p.error(f"--rates: {args.rates!r} is not a comma-separated list of whole numbers")
    if not rates or min(rates) < 8000:
        p.error(f"--rates: {args.rates!r}: give at least one rate, each at least 8000 Hz")
    for out in args.out:
        results = hard_bench.saved_results(p, out)
        saved = out / "forms.json"
        done = json.loads(saved.read_text()) if saved.exists() else {}
        for key, row in results.items():
            if "cli_remix_calibration" not in row:  # a run that failed: nothing calibrated to test
                continue
            wanted = {f"{fmt}/{rate}" for fmt in formats for rate in rates}
            if set(done.get(key, {}).get("found", {})) != wanted:  # else measured before: kept
                corpus = hard_bench.run_corpus(args.corpus, out, row)
                done[key] = form_figures(corpus, out, key, row, formats, rates)
                write_text_atomic(saved, json.dumps(done, indent=1))
            fig = done[key]
            print(
                f"{out.name} {key}: by format "
                + ", ".join(f"{k} {v:.3f}" for k, v in fig["recall_by_format"].items())
                + f" (spread {fig['format_spread']:.3f}); by rate "
                + ", ".join(f"{k} {v:.3f}" for k, v in fig["recall_by_rate"].items())
                + f" (spread {fig['rate_spread']:.3f})"
            )


if __name__ == "__main__":
    main()
