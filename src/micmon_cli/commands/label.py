"""`micmon label`: write, show, check and suggest the labels.json of sample folders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, resolve

if TYPE_CHECKING:
    import numpy as np

    from micmon.labels import Labels
    from micmon_cli.config import ResolvedConfig

#: Resolution of the loudness profile used by the timeline and --suggest.
LOUDNESS_STEP = 0.1
LOUDNESS_RATE = 16000
#: --suggest: loudness is smoothed over this many seconds, and no segment is shorter than this.
SMOOTH_SECONDS = 0.5
MIN_SEGMENT_SECONDS = 1.0
#: --suggest: a recording whose loud and quiet parts differ by less than this has no boundary.
MIN_CONTRAST_DB = 6.0
SILENCE_DB = -120.0


def find_sample(sample: str, cfg: ResolvedConfig) -> Path:
    """Return the sample folder `sample` names: a path, or a folder name under audio_dir."""
    from micmon._io import expand_path
    from micmon.errors import AudioError

    direct = expand_path(sample)
    if direct.is_dir():
        return direct
    under = cfg.config.paths.audio_dir / sample
    if under.is_dir():
        return under
    raise AudioError(f"{sample}: no such sample folder (looked in {direct.absolute()} and "
                     f"{under}); record one with `micmon record {sample}`")


def loudness_profile(path: str | Path, *, ffmpeg_bin: str = "ffmpeg") -> np.ndarray:
    """Return the mean power (linear, full scale 1) of each LOUDNESS_STEP of the recording."""
    import numpy as np

    from micmon.audio import AudioFile

    powers = []
    with AudioFile(path, sample_duration=LOUDNESS_STEP, sample_rate=LOUDNESS_RATE,
                   ffmpeg_bin=ffmpeg_bin) as reader:
        for window in reader:
            x = window.samples.astype(np.float64)
            powers.append(float(np.mean(x * x)))
    return np.asarray(powers, dtype=np.float64)


def _db(power: float) -> float:
    import math

    return 10 * math.log10(power) if power > 0 else float("-inf")


def _pairs(pairs: list[str]) -> dict[str | float, str]:
    from micmon.errors import LabelsError

    out: dict[str | float, str] = {}
    for pair in pairs:
        time, sep, label = pair.partition("=")
        if not sep or not time.strip() or not label.strip():
            raise LabelsError(f"{pair!r}: expected TIME=LABEL, e.g. 00:12.5=positive")
        out[time.strip()] = label.strip()
    return out


def _timeline(labels: Labels, duration: float, power: np.ndarray) -> list[tuple[str, ...]]:
    import numpy as np

    from micmon.labels import format_time

    rows: list[tuple[str, ...]] = []
    for seg in labels.segments(duration):
        end = seg.end if seg.end is not None else duration
        lo, hi = int(seg.start / LOUDNESS_STEP), max(int(end / LOUDNESS_STEP), 0)
        part = power[lo:hi]
        level = _db(float(np.mean(part))) if len(part) else float("-inf")
        rows.append((format_time(seg.start), format_time(end), seg.label,
                     f"{end - seg.start:.1f}", console.fmt_db(level)))
    return rows


def suggest_boundaries(power: np.ndarray, *, background: str, foreground: str
                       ) -> dict[str, str]:
    """Return a labels.json draft: loud stretches labelled `foreground`, the rest `background`."""
    import numpy as np

    from micmon.labels import format_time

    if len(power) == 0:
        return {"00:00": background}
    db = 10 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    k = max(1, int(round(SMOOTH_SECONDS / LOUDNESS_STEP)))
    padded = np.pad(db, (k // 2, k - 1 - k // 2), mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, k), axis=-1)
    quiet, loud = np.percentile(smooth, [10, 90])
    if loud - quiet < MIN_CONTRAST_DB:
        return {"00:00": background}
    is_loud = smooth > (quiet + loud) / 2
    # Runs shorter than the minimum are absorbed by their neighbours.
    min_len = max(1, int(round(MIN_SEGMENT_SECONDS / LOUDNESS_STEP)))
    changes = np.flatnonzero(np.diff(is_loud.astype(np.int8))) + 1
    bounds = [0, *changes.tolist(), len(is_loud)]
    runs = [(bounds[i], bounds[i + 1], bool(is_loud[bounds[i]])) for i in range(len(bounds) - 1)]
    merged: list[list[int | bool]] = []
    for start, end, state in runs:
        if merged and (end - start < min_len or merged[-1][2] == state):
            merged[-1][1] = end
        else:
            merged.append([start, end, state])
    return {format_time(int(start) * LOUDNESS_STEP): foreground if state else background
            for start, _end, state in merged}


@dataclass
class Problem:
    """One problem found by --check."""

    folder: str
    problem: str


def check_all(cfg: ResolvedConfig, ffmpeg_bin: str) -> list[Problem]:
    """Validate every sample folder under audio_dir; return all problems found."""
    import os

    from micmon.audio import probe_duration
    from micmon.audio.directory import LABELS_FILE, find_audio_file
    from micmon.errors import MicmonError
    from micmon.labels import Labels, format_time

    root = cfg.existing_dir("paths.audio_dir")
    known = set(cfg.config.training.labels)
    problems: list[Problem] = []
    folders = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        audio = find_audio_file(here)
        has_labels = LABELS_FILE in files
        if audio is None and not has_labels:
            continue
        folders += 1
        name = str(here.relative_to(root)) if here != root else str(here)
        if audio is None:
            problems.append(Problem(name, "labels.json but no audio file (audio.mp3, .wav...)"))
            continue
        if not has_labels:
            problems.append(Problem(name, f"{audio.name} has no labels.json; add labels with "
                                    f"`micmon label {name} 00:00=LABEL`"))
            continue
        try:
            labels = Labels.load(here / LABELS_FILE)
            duration = probe_duration(audio, ffmpeg_bin=ffmpeg_bin)
        except MicmonError as exc:
            problems.append(Problem(name, str(exc).replace(f"{here}/", "")))
            continue
        for start in labels.past(duration):
            problems.append(Problem(name, f"label at {format_time(start)} is past the end of the "
                                    f"recording ({format_time(duration)})"))
        if known:
            for label in labels.names:
                if label not in known:
                    problems.append(Problem(name, f"label {label!r} is not in training.labels "
                                            f"({', '.join(sorted(known))})"))
    if folders == 0:
        problems.append(Problem(str(root), "no sample folders (audio.mp3 + labels.json); "
                                "record one with `micmon record`"))
    return problems


def label(
    sample: Annotated[str | None, typer.Argument(
        help="Sample folder: a path, or a folder name under audio_dir.", show_default=False)] = None,
    pairs: Annotated[list[str] | None, typer.Argument(
        help="TIME=LABEL pairs to add (TIME as seconds, MM:SS or HH:MM:SS[.fff]).",
        show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate every sample folder under "
                                        "audio_dir and list all problems.")] = False,
    suggest: Annotated[bool, typer.Option("--suggest", help="Propose boundaries from loudness "
                                          "changes; prints a labels.json draft.")] = False,
    audio_dir: Annotated[Path | None, typer.Option(
        "--audio-dir", help="Folder of sample folders (config: paths.audio_dir).",
        show_default=False)] = None,
    ffmpeg: FFmpeg = None,
) -> None:
    """Label a recording: add TIME=LABEL pairs to its labels.json, or show its timeline.

    Each pair starts a label at TIME that lasts until the next one. Without pairs, shows the
    timeline with each segment's duration and mean loudness. --check validates all sample
    folders at once; --suggest drafts labels from loudness changes.

    Example: micmon label sample_1 00:00=negative 00:12.5=positive 00:20=negative
    """
    from micmon.audio import probe_duration
    from micmon.audio.directory import find_audio_file
    from micmon.errors import AudioError, LabelsError, ParameterError
    from micmon.labels import Labels, find_labels_file, format_time
    from micmon_cli.config import Flag

    cfg = resolve(Flag("paths.audio_dir", audio_dir, "--audio-dir"),
                  Flag("audio.ffmpeg", ffmpeg, "--ffmpeg"))
    ffmpeg_bin = cfg.config.audio.ffmpeg
    if check:
        problems = check_all(cfg, ffmpeg_bin)
        if problems:
            console.result(console.table("problems", ["sample", "problem"],
                                         ((p.folder, p.problem) for p in problems)))
            raise LabelsError(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in "
                              f"{cfg.config.paths.audio_dir}; fix them and run --check again")
        console.result(f"all sample folders under {cfg.config.paths.audio_dir} are fine")
        return
    if sample is None:
        raise ParameterError("SAMPLE: name a sample folder, or use --check; e.g. "
                             "`micmon label sample_1`")
    folder = find_sample(sample, cfg)
    audio = find_audio_file(folder)
    if audio is None:
        raise AudioError(f"{folder}: no audio file (audio.mp3, audio.wav...); record one with "
                         f"`micmon record {folder.name}`")
    duration = probe_duration(audio, ffmpeg_bin=ffmpeg_bin)
    labels_path = folder / "labels.json"
    existing = Labels.load(labels_path) if find_labels_file(folder) else None
    background = cfg.config.training.background_label

    if suggest:
        names = [n for n in cfg.config.training.labels if n != background]
        draft = suggest_boundaries(loudness_profile(audio, ffmpeg_bin=ffmpeg_bin),
                                   background=background,
                                   foreground=names[0] if names else "positive")
        console.out.print_json(json.dumps(draft))
        console.info(f"review it, then save it as {labels_path}")
        return

    if pairs:
        new = Labels(_pairs(pairs), source="command line")
        late = new.past(duration)
        if late:
            raise LabelsError(f"{format_time(late[0])}: past the end of the recording "
                              f"({format_time(duration)}); use a time before it")
        labels = existing.merged(new) if existing is not None else new
        labels.save(labels_path)
        console.info(f"saved {labels_path}")
    elif existing is None:
        raise LabelsError(f"{labels_path}: no labels yet; add some, e.g. `micmon label "
                          f"{sample} 00:00={background}`")
    else:
        labels = existing
    power = loudness_profile(audio, ffmpeg_bin=ffmpeg_bin)
    console.result(console.table(
        f"{folder.name}: {format_time(duration)}",
        ["start", "end", "label", "seconds", "dBFS"], _timeline(labels, duration, power),
        numeric=("seconds", "dBFS")))
    for past_end in labels.past(duration):  # left out of the timeline, but not silently
        console.warn(f"{labels_path}: the label at {format_time(past_end)} is past the end of the "
                     f"recording ({format_time(duration)}) and labels nothing; remove it")
