"""Shared helpers for the benchmarks: generated recordings (cached in bench/out/), timing, tables."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out"
SAMPLE_RATE = 44100
LOW_FREQ, HIGH_FREQ, BINS, WINDOW = 250.0, 7500.0, 100, 2.0
#: Seconds of each labelled stretch in a generated recording: even stretches are noise and a
#: 120 Hz hum ("negative"), odd ones add 3 kHz beeps (0.5 s on, 0.5 s off; "positive").
STRETCH = 60


def ffmpeg() -> str:
    """Return the path of ffmpeg, or exit with a clear message."""
    found = shutil.which("ffmpeg")
    if found is None:
        sys.exit("ffmpeg not found: install it (apt-get install ffmpeg)")
    return found


def _mmss(seconds: int) -> str:
    return (
        f"{seconds // 60:02d}:{seconds % 60:02d}"
        if seconds < 3600
        else f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    )


def recording(minutes: int, name: str | None = None) -> Path:
    """Return a sample folder holding a `minutes`-long 44.1 kHz mono mp3 and its labels.json.

    Generated once with ffmpeg's lavfi sources (pink noise + hum, with 3 kHz beeps in every
    other minute) and cached under bench/out/; a `.done` marker means it is complete.
    """
    folder = OUT / (name or f"rec{minutes}")
    audio, labels, done = folder / "audio.mp3", folder / "labels.json", folder / ".done"
    if done.exists() and audio.exists() and labels.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    beep = f"0.4*mod(floor(t/{STRETCH}),2)*lt(mod(t,1),0.5)"
    cmd = [
        ffmpeg(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"anoisesrc=d={seconds}:c=pink:r={SAMPLE_RATE}:a=0.08:seed=1",
        "-f",
        "lavfi",
        "-i",
        f"sine=f=3000:r={SAMPLE_RATE}:d={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=f=120:r={SAMPLE_RATE}:d={seconds}",
        "-filter_complex",
        f"[1]volume=eval=frame:volume='{beep}'[b];[2]volume=0.1[h];[0][b][h]amix=inputs=3:normalize=0[m]",
        "-map",
        "[m]",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        str(audio),
    ]
    print(f"generating {minutes} min recording {audio} (once) ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    entries = {
        _mmss(t): ("positive" if (t // STRETCH) % 2 else "negative") for t in range(0, seconds, STRETCH)
    }
    labels.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    done.touch()
    return folder


def ffmpeg_bare_decode(path: Path) -> dict[str, float]:
    """Time ffmpeg decoding `path` to 44.1 kHz mono s16le on /dev/null: wall and CPU seconds.

    The same command and output shape as the library's decoder, without anyone reading the PCM.
    """
    cmd = [
        ffmpeg(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-i",
        str(path),
        "-f",
        "s16le",
        "-ar",
        str(SAMPLE_RATE),
        "-ac",
        "1",
        "-",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "wb") as sink:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=sink, check=True)
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process and by its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews wall times)."""
    return f"{os.getloadavg()[0]:.2f}"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(script: Path, *args: str, timeout: float = 1800) -> dict:
    """Run `script --worker ...` in a fresh interpreter (clean peak RSS) and return its JSON line."""
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"worker {script.name} {' '.join(args)} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) of `values`, linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a small Markdown table (prints well in a terminal and pastes into docs)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [f"\n{title}\n", line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def verdict(ok: bool) -> str:
    """'met' or 'MISSED'."""
    return "met" if ok else "MISSED"
