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
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out"
#: Sample rate of the generated recordings (a typical mp3); the library resamples them on decoding.
SOURCE_RATE = 44100
#: Decoding rate: the `audio.sample_rate` default (16 kHz), so every figure is for the defaults.
SAMPLE_RATE = 16000
LOW_FREQ, HIGH_FREQ, BINS, WINDOW = 250.0, 7500.0, 100, 2.0
#: Where the default model (`default_model`) is trained once.
DEFAULT_MODEL_DIR = OUT / "default_model"
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
        f"anoisesrc=d={seconds}:c=pink:r={SOURCE_RATE}:a=0.08:seed=1",
        "-f",
        "lavfi",
        "-i",
        f"sine=f=3000:r={SOURCE_RATE}:d={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=f=120:r={SOURCE_RATE}:d={seconds}",
        "-filter_complex",
        f"[1]volume=eval=frame:volume='{beep}'[b];[2]volume=0.1[h];[0][b][h]amix=inputs=3:normalize=0[m]",
        "-map",
        "[m]",
        "-ac",
        "1",
        "-ar",
        str(SOURCE_RATE),
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


def bare_decode_command(path: Path, sample_rate: int = SAMPLE_RATE) -> list[str]:
    """ffmpeg decoding `path` to mono s16le at `sample_rate` on /dev/null: the yardstick.

    The same output shape as the library's decoder (`audio.sample_rate`, mono, s16le), without
    anyone reading the PCM.
    """
    return [
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
        str(sample_rate),
        "-ac",
        "1",
        "-y",
        os.devnull,
    ]


def ffmpeg_bare_decode(path: Path, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Time `bare_decode_command(path)`: wall and CPU seconds."""
    return run_timed(bare_decode_command(path, sample_rate))


def run_timed(
    cmd: Sequence[str], *, stdout: Path | None = None, cwd: Path | None = None, env: dict | None = None
) -> dict[str, float]:
    """Run `cmd` to its end (stdout to a file or /dev/null): wall seconds, and from the kernel's
    accounting of that one child (wait4) its CPU seconds (user + system, its reaped children
    included) and peak RSS in MiB (the largest single process among them)."""
    with open(stdout or os.devnull, "wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=sink, stderr=subprocess.PIPE, cwd=cwd, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode})")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024.0}


def alternate(
    a: Sequence[str],
    b: Sequence[str],
    runs: int,
    *,
    cwd: Path | None = None,
    stdout: Path | None = None,
    env: dict | None = None,
) -> dict[str, list[float]]:
    """Time command A against command B in turn (A B A B ...), after one warm-up pair.

    Returns each run's wall s, CPU s and peak MiB of both, and the pairwise speed of A relative
    to B (B's wall / A's wall: 0.5 means A took twice B's time). Pairing keeps the ratio
    meaningful when the machine's speed drifts; quote medians.
    """
    keys = ("a_wall", "a_cpu", "a_peak", "b_wall", "b_cpu", "b_peak", "speed")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(runs + 1):
        ra = run_timed(a, cwd=cwd, stdout=stdout, env=env)
        rb = run_timed(b, cwd=cwd)
        if i == 0:
            continue
        for side, r in (("a", ra), ("b", rb)):
            out[f"{side}_wall"].append(r["wall_s"])
            out[f"{side}_cpu"].append(r["cpu_s"])
            out[f"{side}_peak"].append(r["peak_mib"])
        out["speed"].append(rb["wall_s"] / ra["wall_s"])
    return out


def spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """'median (min-max)' of `values`."""
    return f"{median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


#: Columns of a "command vs bare decode" table (`ratio_row` fills one row).
RATIO_HEADER = [
    "command (A)",
    "wall s",
    "CPU s (incl. ffmpeg)",
    "peak MiB",
    "bare decode wall s",
    "speed vs decode",
]


def ratio_row(name: str, r: dict[str, list[float]]) -> list[str]:
    """One row of a "command vs bare decode" table from `alternate`'s figures."""
    return [
        name,
        spread(r["a_wall"]),
        spread(r["a_cpu"]),
        f"{median(r['a_peak']):.0f}",
        spread(r["b_wall"]),
        f"**{median(r['speed']):.2f}** ({min(r['speed']):.2f}-{max(r['speed']):.2f})",
    ]


def micmon_command() -> tuple[list[str], dict[str, str]]:
    """`python -m micmon_cli` of this checkout (src/ first on PYTHONPATH), and its environment."""
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    src = str(BENCH_DIR.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["NO_COLOR"] = "1"
    return [sys.executable, "-m", "micmon_cli"], env


def sample_root(minutes: int) -> Path:
    """A folder holding only the `minutes` recording's sample folder (for datagen and evaluate)."""
    folder = recording(minutes)
    root = OUT / f"only{minutes}"
    target = root / folder.name
    target.mkdir(parents=True, exist_ok=True)
    for name in ("audio.mp3", "labels.json"):
        if not (target / name).exists():
            os.link(folder / name, target / name)
    return root


def median(values: Sequence[float]) -> float:
    """The median (50th percentile)."""
    return percentile(values, 50)


def default_spec() -> Any:
    """The FeatureSpec of a default micmon.yaml (the CLI's defaults: 16 kHz, 2 s, 40-band log-mel)."""
    from micmon_cli.config import Config

    return Config().feature_spec()  # an unset high_freq follows the rate, as the CLI does


def default_model(retrain: bool = False) -> Path:
    """Return DEFAULT_MODEL_DIR, training it first (once) as `micmon train` would.

    The default features (`default_spec`) of a 4-minute generated recording, the default network
    for them (the CNN) through `micmon.training.train`; 3 epochs (the cost of scoring does not
    depend on how long it was trained). Trained in a fresh interpreter (TensorFlow stays out of
    the measuring processes).
    """
    if retrain or not (DEFAULT_MODEL_DIR / "micmon.json").exists():
        print("training the default model (once) ...", file=sys.stderr, flush=True)
        folder = recording(4, "train4")
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); "
            f"import _common; _common._train_default({str(folder)!r})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, env=micmon_command()[1])
    return DEFAULT_MODEL_DIR


def _train_default(folder: str) -> None:
    from micmon.audio import AudioDirectory
    from micmon.dataset.generate import plan, process_folder
    from micmon.training import TrainingOptions, train

    spec = default_spec()
    data_dir = OUT / "default_model_data"
    work = plan(Path(folder).parent, data_dir, overwrite=True)
    for directory, output in zip(work.folders, work.outputs, strict=True):
        if Path(directory.path) == Path(folder):
            process_folder(AudioDirectory(folder), output, spec, overwrite=True)
    result = train(data_dir, TrainingOptions(epochs=3))
    result.save(DEFAULT_MODEL_DIR, overwrite=True)


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process and by its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def environment() -> dict[str, Any]:
    """What a trained figure depends on besides the code: versions (packages, ffmpeg), CPU vector units."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("tensorflow", "keras", "numpy", "ai-edge-litert"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    cpu, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not cpu:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    python = sys.version.split()[0]
    words = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True, check=False).stdout.split()
    packages["ffmpeg"] = words[2] if len(words) > 2 else None  # "ffmpeg version 5.1.9-0+deb12u1 ..."
    return {"python": python, **packages, "cpu": cpu, "cpus": os.cpu_count(), "vector": vector}


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews wall times)."""
    return f"{os.getloadavg()[0]:.2f}"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(script: Path, *args: str, timeout: float = 1800) -> dict:
    """Run `script --worker ...` in a fresh interpreter (clean peak RSS, this checkout's code) and
    return its JSON line."""
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=micmon_command()[1],  # this checkout's src/ first
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
