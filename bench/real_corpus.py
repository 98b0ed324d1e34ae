"""Build the real-audio development corpus for the accuracy benchmark (issue 5); not run in CI.

Sources (Debian packages, installed by `make bench-deps`):

- positive "alarm": alarm-clock-elapsed.oga (sound-theme-freedesktop), looped into 4-20 s events;
- background: the English speech prompts of asterisk-core-sounds-en-wav (a continuous talker
  with pauses), the other freedesktop sounds now and then, and a low noise floor.

Every recording is a real sample folder (audio.mp3 + labels.json with the exact event times):

    OUT/train/rec_NN           8 x 4 min, alarm level drawn from the tiers' range
    OUT/calib/rec_NN           4 x 4 min + calib/quiet (30 min, no alarm): for --calibrate
    OUT/test/{easy,medium,hard}/rec_NN   2 x 4 min per tier: alarm +6, 0, -10 dB vs the speech
    OUT/test/{very-hard,extreme}/rec_NN  2 x 4 min per tier: -20, -30 dB (quieter than training)
    OUT/test/quiet             60 min without any alarm: false alarms per hour
    OUT/corpus.json            what was generated (tiers, levels, events)

Train, calibration and test recordings use disjoint halves of the speech prompts.

Without arguments it builds bench/out/corpus (once: an existing corpus.json means it is complete;
--force rebuilds it).

Example: python bench/real_corpus.py ~/micmon-corpus
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ALARM = Path("/usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
SPEECH = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
PACKAGES = ("sound-theme-freedesktop", "asterisk-core-sounds-en-wav")

RATE = 44100
#: RMS level of the talker while speaking, dBFS.
SPEECH_DBFS = -26.0
#: Random level change per prompt, +/- dB.
SPEECH_JITTER_DB = 4.0
#: Pause between prompts, seconds.
PAUSE_SECONDS = (0.2, 2.5)
#: Mean seconds between two other household sounds, and their level vs the speech (dB).
OTHER_EVERY_SECONDS = 25.0
OTHER_LEVEL_DB = (-12.0, 0.0)
#: White noise floor, dBFS.
NOISE_DBFS = -60.0
#: Alarm event length and the silence between events, seconds.
EVENT_SECONDS = (4.0, 20.0)
GAP_SECONDS = (15.0, 45.0)
#: Alarm level relative to the speech, dB, per test tier; training draws from the whole range.
TIERS: dict[str, float] = {"easy": 6.0, "medium": 0.0, "hard": -10.0}
#: Harder test-only tiers (quieter than anything in training): level robustness.
EXTRA_TIERS: dict[str, float] = {"very-hard": -20.0, "extreme": -30.0}
PEAK_LIMIT = 0.95
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "corpus"
CHUNK_SECONDS = 300.0


def decode(path: Path, rate: int = RATE) -> np.ndarray:
    """Return a file's audio as float32 mono at `rate` (ffmpeg)."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS."""
    return 20.0 * float(np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def active_rms_db(x: np.ndarray, rate: int = RATE) -> float:
    """RMS level of the louder (active) 10 ms frames, dBFS: speech without its pauses."""
    frame = rate // 100
    n = len(x) // frame * frame
    if n == 0:
        return rms_db(x)
    levels = np.sqrt(np.mean(np.square(x[:n].reshape(-1, frame)), axis=1)) + 1e-12
    loud = levels[20 * np.log10(levels) > 20 * np.log10(levels.max()) - 30]
    return 20.0 * float(np.log10(np.sqrt(np.mean(loud**2))))


class Sources:
    """Decoded source sounds, the speech prompts split into disjoint pools."""

    def __init__(self, rng: np.random.Generator) -> None:
        missing = [str(p) for p in (ALARM, SPEECH) if not p.exists()]
        if missing:
            sys.exit(f"missing {', '.join(missing)}: apt-get install {' '.join(PACKAGES)}")
        self.alarm = decode(ALARM)
        self.alarm_db = rms_db(self.alarm)
        others = sorted(p for p in FREEDESKTOP.glob("*.oga") if p != ALARM)
        self.others = [decode(p) for p in others]
        prompts = sorted(SPEECH.rglob("*.wav"))
        order = rng.permutation(len(prompts))
        half = len(prompts) // 2
        self.pools = {"train": [prompts[i] for i in order[:half]], "eval": [prompts[i] for i in order[half:]]}
        self._cache: dict[Path, np.ndarray] = {}

    def prompt(self, path: Path) -> np.ndarray:
        """Return a speech prompt, decoded once, normalised to SPEECH_DBFS while active."""
        if path not in self._cache:
            x = decode(path)
            self._cache[path] = (
                (x * 10 ** ((SPEECH_DBFS - active_rms_db(x)) / 20)).astype(np.float32) if len(x) else x
            )
        return self._cache[path]


def background(seconds: float, sources: Sources, pool: str, rng: np.random.Generator) -> np.ndarray:
    """Return `seconds` of a talker with pauses, other sounds now and then, and a noise floor."""
    n = int(seconds * RATE)
    out = (10 ** (NOISE_DBFS / 20) * rng.standard_normal(n)).astype(np.float32)
    prompts = sources.pools[pool]
    pos = int(rng.uniform(0, 2) * RATE)
    while pos < n:
        x = sources.prompt(prompts[rng.integers(len(prompts))])
        x = x * 10 ** (rng.uniform(-SPEECH_JITTER_DB, SPEECH_JITTER_DB) / 20)
        end = min(n, pos + len(x))
        out[pos:end] += x[: end - pos]
        pos = end + int(rng.uniform(*PAUSE_SECONDS) * RATE)
    t = rng.exponential(OTHER_EVERY_SECONDS)
    while t < seconds:
        x = sources.others[rng.integers(len(sources.others))]
        level = SPEECH_DBFS + rng.uniform(*OTHER_LEVEL_DB)
        x = x * 10 ** ((level - active_rms_db(x)) / 20)
        a = int(t * RATE)
        b = min(n, a + len(x))
        out[a:b] += x[: b - a]
        t += len(x) / RATE + rng.exponential(OTHER_EVERY_SECONDS)
    return out


def alarm(seconds: float, level_db: float, sources: Sources, rng: np.random.Generator) -> np.ndarray:
    """Return the alarm looped for `seconds` (random phase) at `level_db` dB vs the speech."""
    n = int(round(seconds * RATE))
    offset = int(rng.integers(len(sources.alarm)))
    reps = (offset + n) // len(sources.alarm) + 1
    x = np.tile(sources.alarm, reps)[offset : offset + n]
    return x * 10 ** ((SPEECH_DBFS + level_db - sources.alarm_db) / 20)


def fmt(seconds: float) -> str:
    """Return "MM:SS.fff"."""
    minutes, secs = divmod(round(seconds * 1000) / 1000, 60)
    return f"{int(minutes):02d}:{secs:06.3f}"


def encode(folder: Path, chunks: list[np.ndarray] | np.ndarray) -> None:
    """Encode float audio (one array or consecutive chunks) to folder/audio.mp3 at 128 kbit/s."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "f32le",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-b:a",
            "128k",
            str(folder / "audio.mp3"),
        ],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    for chunk in [chunks] if isinstance(chunks, np.ndarray) else chunks:
        proc.stdin.write(np.asarray(chunk, dtype=np.float32).tobytes())
    proc.stdin.close()
    if proc.wait():
        raise RuntimeError(f"ffmpeg failed to encode {folder}")


def limit(x: np.ndarray) -> np.ndarray:
    """Scale down a mix whose peak would clip (levels stay relative)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else x


def make_recording(
    folder: Path,
    *,
    seconds: float,
    level_db: float | tuple[float, float],
    sources: Sources,
    pool: str,
    rng: np.random.Generator,
) -> dict:
    """Write one recording with alarm events; return its manifest entry."""
    x = background(seconds, sources, pool, rng)
    labels = {"00:00.000": "negative"}
    events = []
    t = rng.uniform(5.0, 20.0)
    while True:
        length = rng.uniform(*EVENT_SECONDS)
        if t + length > seconds - 3.0:
            break
        level = level_db if isinstance(level_db, float) else float(rng.uniform(*level_db))
        a = int(round(t * RATE))
        piece = alarm(length, level, sources, rng)
        x[a : a + len(piece)] += piece
        start, end = a / RATE, (a + len(piece)) / RATE
        labels[fmt(start)] = "alarm"
        labels[fmt(end)] = "negative"
        events.append({"start": round(start, 3), "end": round(end, 3), "level_db": round(level, 1)})
        t = end + rng.uniform(*GAP_SECONDS)
    encode(folder, limit(x))
    (folder / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return {"path": str(folder), "seconds": seconds, "events": events}


def make_quiet(
    folder: Path, *, minutes: float, sources: Sources, pool: str, rng: np.random.Generator
) -> dict:
    """Write a long recording without any alarm, in chunks; return its manifest entry."""
    chunks = []
    left = minutes * 60
    while left > 0:
        piece = min(CHUNK_SECONDS, left)
        chunks.append(limit(background(piece, sources, pool, rng)))
        left -= piece
    encode(folder, chunks)
    (folder / "labels.json").write_text(json.dumps({"00:00.000": "negative"}) + "\n")
    return {"path": str(folder), "seconds": minutes * 60, "events": []}


def add_extra_tiers(out: Path, *, per_tier: int, minutes: float, seed: int) -> None:
    """Write the EXTRA_TIERS test recordings into an existing corpus and its manifest."""
    rng = np.random.default_rng(seed + 1000)
    sources = Sources(np.random.default_rng(seed))  # same speech split as the corpus
    path = out / "corpus.json"
    manifest = json.loads(path.read_text())
    for tier, level in EXTRA_TIERS.items():
        manifest["test"][tier] = [
            make_recording(
                out / "test" / tier / f"rec_{i + 1:02d}",
                seconds=minutes * 60,
                level_db=level,
                sources=sources,
                pool="eval",
                rng=rng,
            )
            for i in range(per_tier)
        ]
        manifest["tiers"][tier] = level
        print("test tier", tier, flush=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Build the corpus."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, nargs="?", default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true", help="rebuild an existing corpus")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=4.0, help="length of event recordings")
    p.add_argument("--train", type=int, default=8)
    p.add_argument("--calib", type=int, default=4)
    p.add_argument("--per-tier", type=int, default=2)
    p.add_argument("--quiet-minutes", type=float, default=60.0)
    p.add_argument("--calib-quiet-minutes", type=float, default=30.0)
    p.add_argument(
        "--extra-tiers-only", action="store_true", help="add only the extra test tiers to an existing corpus"
    )
    args = p.parse_args(argv)
    if args.extra_tiers_only:
        add_extra_tiers(args.out, per_tier=args.per_tier, minutes=args.minutes, seed=args.seed)
        return
    if (args.out / "corpus.json").exists() and not args.force:
        print(f"{args.out}: corpus already built (pass --force to rebuild)")
        return
    rng = np.random.default_rng(args.seed)
    sources = Sources(rng)
    span = (min(TIERS.values()), max(TIERS.values()))
    seconds = args.minutes * 60
    manifest: dict = {
        "rate": RATE,
        "tiers": TIERS,
        "speech_dbfs": SPEECH_DBFS,
        "noise_dbfs": NOISE_DBFS,
        "train": [],
        "calib": [],
        "test": {},
    }
    for i in range(args.train):
        manifest["train"].append(
            make_recording(
                args.out / "train" / f"rec_{i + 1:02d}",
                seconds=seconds,
                level_db=span,
                sources=sources,
                pool="train",
                rng=rng,
            )
        )
        print("train", i + 1, flush=True)
    for i in range(args.calib):
        manifest["calib"].append(
            make_recording(
                args.out / "calib" / f"rec_{i + 1:02d}",
                seconds=seconds,
                level_db=span,
                sources=sources,
                pool="eval",
                rng=rng,
            )
        )
    manifest["calib"].append(
        make_quiet(
            args.out / "calib" / "quiet",
            minutes=args.calib_quiet_minutes,
            sources=sources,
            pool="eval",
            rng=rng,
        )
    )
    print("calib done", flush=True)
    for tier, level in TIERS.items():
        manifest["test"][tier] = [
            make_recording(
                args.out / "test" / tier / f"rec_{i + 1:02d}",
                seconds=seconds,
                level_db=level,
                sources=sources,
                pool="eval",
                rng=rng,
            )
            for i in range(args.per_tier)
        ]
    manifest["test"]["quiet"] = [
        make_quiet(
            args.out / "test" / "quiet", minutes=args.quiet_minutes, sources=sources, pool="eval", rng=rng
        )
    ]
    (args.out / "corpus.json").write_text(json.dumps(manifest, indent=1) + "\n")
    add_extra_tiers(args.out, per_tier=args.per_tier, minutes=args.minutes, seed=args.seed)
    events = sum(len(r["events"]) for r in manifest["train"])
    print(f"wrote {args.out}: {events} training events", flush=True)


if __name__ == "__main__":
    main()
