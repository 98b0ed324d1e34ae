"""Dataset generation with the default features on a 60-minute mp3, next to ffmpeg's bare decode.

    .venv/bin/python bench/datagen_bench.py [--minutes 60] [--repeats 3] [--profile]

The default features are the CLI's (a default micmon.yaml): 16 kHz, 2 s windows, 40-band log-mel
(`_common.default_spec`). Measured:

- `micmon datagen ROOT OUT --force` (this checkout's CLI, a fresh process each run) in turn with
  `ffmpeg -i audio.mp3 -f s16le -ar 16000 -ac 1 -y /dev/null` (A B A B ...): wall and CPU seconds,
  peak RSS, and the speed ratio pair by pair (medians). Targets: at least half of the bare
  decode's speed, peak RSS at most 200 MB;
- the same without overlapping training windows (features.hop_seconds = the window; the default
  is a quarter window around the labelled sounds, frames shared);
- a breakdown in fresh interpreters (AudioFile windows alone, features alone) so a miss can be
  attributed; --profile prints a cProfile of the library's datagen (`process_folder`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

TARGET_RATIO = 0.5
TARGET_PEAK_MB = 200.0


def _worker(mode: str, folder: Path, profile: bool) -> dict:
    import numpy as np

    from micmon.audio import AudioDirectory, AudioFile
    from micmon.dataset.generate import process_folder
    from micmon.dataset.writer import BATCH_WINDOWS
    from micmon.features import compute_batch

    spec = c.default_spec()
    result: dict = {"mode": mode}
    prof = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(dir=c.OUT) as tmp:
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        if mode == "datagen":  # what `micmon datagen` runs for one sample folder
            done = process_folder(AudioDirectory(folder), Path(tmp) / "data.npz", spec)
            result.update(windows=sum(done.counts.values()))
        elif mode == "decode":  # AudioFile windows only: ffmpeg + pipe + reader thread + segments
            n = 0
            with AudioFile(
                folder / "audio.mp3", window_seconds=spec.window_seconds, sample_rate=spec.sample_rate
            ) as src:
                for _ in src:
                    n += 1
            result.update(windows=n)
        elif mode == "features":  # compute_batch on in-memory windows, batches as DatasetWriter
            rng = np.random.default_rng(0)
            batch = (rng.standard_normal((BATCH_WINDOWS, spec.window_samples)) * 3000).astype(np.int16)
            n_windows = int(float(folder.name.removeprefix("rec")) * 60 / spec.window_seconds)
            t0 = time.perf_counter()  # exclude making the input
            done_n = 0
            while done_n < n_windows:
                k = min(BATCH_WINDOWS, n_windows - done_n)
                compute_batch(batch[:k], spec)
                done_n += k
            result.update(windows=done_n)
        result["wall_s"] = time.perf_counter() - t0
        result["cpu_s"], result["ffmpeg_cpu_s"] = c.cpu_seconds()
        if prof:
            prof.disable()
    result["peak_rss_mib"] = c.peak_rss_mib()
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        result["profile"] = buf.getvalue()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of each measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile the datagen run (main thread)")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, folder = args.worker
        print(json.dumps(_worker(mode, Path(folder), args.profile)))
        return 0

    root = c.sample_root(args.minutes)
    folder = root / f"rec{args.minutes}"
    audio_seconds = args.minutes * 60.0
    micmon, env = c.micmon_command()
    bare = c.bare_decode_command(folder / "audio.mp3")
    out = c.OUT / "datagen_out"
    load_before = c.load_average()
    rows, verdicts = [], []
    hop_config = c.OUT / "datagen_no_overlap.yaml"  # features.hop_seconds has no flag: a config file
    hop_config.write_text("features:\n  hop_seconds: 2.0\n", encoding="utf-8")
    for name, extra in (
        ("micmon datagen (defaults: windows every 0.5 s around the sounds)", []),
        ("micmon datagen, features.hop_seconds 2 (no overlap)", ["--config", str(hop_config)]),
    ):
        cmd = [*micmon, *extra, "datagen", str(root), str(out), "--force"]
        r = c.alternate(cmd, bare, args.repeats, cwd=c.OUT, env=env)
        speed, peak = c.median(r["speed"]), c.median(r["a_peak"])
        if not extra:
            verdicts = [
                [
                    "speed vs bare decode",
                    f"{speed:.2f}",
                    f">= {TARGET_RATIO}",
                    c.verdict(speed >= TARGET_RATIO),
                ],
                ["peak RSS MB", f"{peak:.0f}", f"<= {TARGET_PEAK_MB:.0f}", c.verdict(peak <= TARGET_PEAK_MB)],
            ]
        rows.append(c.ratio_row(name, r))
    print(
        c.table(
            f"Dataset generation, {args.minutes} min 44.1 kHz mono mp3 decoded at {c.SAMPLE_RATE} Hz, "
            f"default features (2 s, 40-band log-mel); each command in turn with the bare decode, "
            f"{args.repeats} pairs, median (min-max); load average {load_before} before, "
            f"{c.load_average()} after",
            c.RATIO_HEADER,
            rows,
        )
    )
    print(c.table("Targets", ["measure", "value", "target", "result"], verdicts))

    here = Path(__file__)
    parts = {mode: c.run_worker(here, mode, str(folder)) for mode in ("decode", "features")}
    print(
        c.table(
            "Parts, each in a fresh interpreter (one run)",
            ["part", "wall s", "audio s / wall s", "CPU s (python + ffmpeg)", "peak RSS MiB"],
            [
                [
                    "AudioFile windows alone (decode, pipe, reader thread)",
                    f"{parts['decode']['wall_s']:.2f}",
                    f"{audio_seconds / parts['decode']['wall_s']:.0f}",
                    f"{parts['decode']['cpu_s']:.2f} + {parts['decode']['ffmpeg_cpu_s']:.2f}",
                    f"{parts['decode']['peak_rss_mib']:.0f}",
                ],
                [
                    "features alone (compute_batch, 64 windows a batch)",
                    f"{parts['features']['wall_s']:.2f}",
                    f"{audio_seconds / parts['features']['wall_s']:.0f}",
                    f"{parts['features']['cpu_s']:.2f}",
                    f"{parts['features']['peak_rss_mib']:.0f}",
                ],
            ],
        )
    )
    if args.profile:
        prof = c.run_worker(here, "datagen", str(folder), "--profile")
        print(f"\ncProfile of process_folder (main thread; wall {prof['wall_s']:.2f} s, profiled):\n")
        print(prof["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
