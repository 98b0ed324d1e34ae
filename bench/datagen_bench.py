"""Dataset generation throughput on a 60-minute 44.1 kHz mp3, next to ffmpeg's bare decode.

    .venv/bin/python bench/datagen_bench.py [--minutes 60] [--repeats 2] [--profile]

Measures (a) `ffmpeg -i audio.mp3 -f s16le -ar 44100 -ac 1 - > /dev/null` and (b) the library's
AudioFile -> DatasetWriter loop (2 s windows, 250-7500 Hz, 100 bins), both in seconds of audio per
wall second, plus a breakdown (decode+windowing alone, features alone, .npz write) so a miss can be
attributed. Each library run is a fresh interpreter, so its peak RSS is its own. Target: datagen at
least half of ffmpeg's bare decode speed.
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


def _worker(mode: str, folder: Path, profile: bool) -> dict:
    import resource

    import numpy as np

    from micmon.audio import AudioFile
    from micmon.dataset import DatasetWriter
    from micmon.features import compute_batch

    audio, labels = folder / "audio.mp3", folder / "labels.json"
    result: dict = {"mode": mode}
    prof = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory(dir=c.OUT) as tmp:
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        if mode == "datagen":
            t_close = 0.0
            with AudioFile(audio, labels, window_seconds=c.WINDOW, sample_rate=c.SAMPLE_RATE) as src:
                writer = DatasetWriter(
                    Path(tmp) / "data.npz", low_freq=c.LOW_FREQ, high_freq=c.HIGH_FREQ, bins=c.BINS
                )
                for sample in src:
                    writer += sample
                t1 = time.perf_counter()
                writer.close()
                t_close = time.perf_counter() - t1
            result.update(
                windows=len(writer), close_s=t_close, npz_mib=(Path(tmp) / "data.npz").stat().st_size / 2**20
            )
        elif mode == "decode":  # AudioFile windows only: ffmpeg + pipe + reader thread + segments
            n = 0
            with AudioFile(audio, labels, window_seconds=c.WINDOW, sample_rate=c.SAMPLE_RATE) as src:
                for _ in src:
                    n += 1
            result.update(windows=n)
        elif mode == "features":  # compute_batch on in-memory windows, batches as DatasetWriter
            from micmon.audio.segment import AudioSegment
            from micmon.dataset.writer import BATCH_WINDOWS

            spec = AudioSegment(
                np.zeros(int(c.WINDOW * c.SAMPLE_RATE), np.int16), c.SAMPLE_RATE
            ).feature_spec(c.LOW_FREQ, c.HIGH_FREQ, c.BINS)
            rng = np.random.default_rng(0)
            batch = (rng.standard_normal((BATCH_WINDOWS, spec.window_samples)) * 3000).astype(np.int16)
            n_windows = int(float(folder.name.removeprefix("rec")) * 60 / c.WINDOW)
            t0 = time.perf_counter()  # exclude making the input
            done = 0
            while done < n_windows:
                k = min(BATCH_WINDOWS, n_windows - done)
                compute_batch(batch[:k], spec)
                done += k
            result.update(windows=done)
        result["wall_s"] = time.perf_counter() - t0
        result["cpu_s"], result["ffmpeg_cpu_s"] = c.cpu_seconds()
        if prof:
            prof.disable()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["ffmpeg_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        result["profile"] = buf.getvalue()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (best kept)")
    parser.add_argument("--profile", action="store_true", help="cProfile the datagen run (main thread)")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, folder = args.worker
        print(json.dumps(_worker(mode, Path(folder), args.profile)))
        return 0

    folder = c.recording(args.minutes)
    audio_seconds = args.minutes * 60.0
    load_before = c.load_average()
    here = Path(__file__)
    bare_runs, gen_runs, dec_runs, feat_runs = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so both see the same load; best of each kept
        bare_runs.append(c.ffmpeg_bare_decode(folder / "audio.mp3"))
        gen_runs.append(c.run_worker(here, "datagen", str(folder)))
        dec_runs.append(c.run_worker(here, "decode", str(folder)))
        feat_runs.append(c.run_worker(here, "features", str(folder)))

    def best(runs: list[dict]) -> dict:
        return min(runs, key=lambda r: r["wall_s"])

    bare, datagen, decode, features = best(bare_runs), best(gen_runs), best(dec_runs), best(feat_runs)
    speed_bare = audio_seconds / bare["wall_s"]
    speed_gen = audio_seconds / datagen["wall_s"]
    ratio = speed_gen / speed_bare

    def cpu(r: dict) -> str:
        return f"{r['cpu_s']:.2f} + ffmpeg {r['ffmpeg_cpu_s']:.2f}"

    print(
        c.table(
            f"Dataset generation, {args.minutes} min 44.1 kHz mono mp3, 2 s windows, "
            f"{c.LOW_FREQ:g}-{c.HIGH_FREQ:g} Hz, {c.BINS} bins (best of {args.repeats}; load average "
            f"{load_before} before, {c.load_average()} after)",
            ["measurement", "wall s", "audio s / wall s", "CPU s (python + ffmpeg)", "peak RSS MiB"],
            [
                [
                    "ffmpeg bare decode to s16le (/dev/null)",
                    f"{bare['wall_s']:.2f}",
                    f"{speed_bare:.0f}",
                    f"ffmpeg {bare['cpu_s']:.2f}",
                    "-",
                ],
                [
                    "datagen: AudioFile -> DatasetWriter -> .npz",
                    f"{datagen['wall_s']:.2f}",
                    f"{speed_gen:.0f}",
                    cpu(datagen),
                    f"{datagen['peak_rss_mib']:.0f} (ffmpeg {datagen['ffmpeg_peak_rss_mib']:.0f})",
                ],
                [
                    "  part: AudioFile windows alone",
                    f"{decode['wall_s']:.2f}",
                    f"{audio_seconds / decode['wall_s']:.0f}",
                    cpu(decode),
                    f"{decode['peak_rss_mib']:.0f}",
                ],
                [
                    "  part: features alone (compute_batch, 64/batch)",
                    f"{features['wall_s']:.2f}",
                    f"{audio_seconds / features['wall_s']:.0f}",
                    f"{features['cpu_s']:.2f}",
                    f"{features['peak_rss_mib']:.0f}",
                ],
                ["  part: .npz write (close)", f"{datagen['close_s']:.2f}", "-", "-", "-"],
            ],
        )
    )
    print(
        c.table(
            "Target",
            ["ratio datagen / bare decode", "target", "result"],
            [[f"{ratio:.2f}", f">= {TARGET_RATIO}", c.verdict(ratio >= TARGET_RATIO)]],
        )
    )
    print(f"\nwindows: {datagen['windows']}, dataset {datagen['npz_mib']:.2f} MiB")
    if args.profile or ratio < TARGET_RATIO:
        prof = c.run_worker(Path(__file__), "datagen", str(folder), "--profile")
        print(
            f"\ncProfile of one datagen run (main thread only; wall {prof['wall_s']:.2f} s "
            "under the profiler):\n"
        )
        print(prof["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
