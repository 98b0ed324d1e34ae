"""`micmon label`: write, show, check and suggest the labels.json of sample folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, resolve
from micmon_cli.options import config_option

if TYPE_CHECKING:
    import numpy as np

    from micmon.labels import Labels
    from micmon_cli.config import ResolvedConfig


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
    raise AudioError(
        f"{sample}: no such sample folder (looked in {direct.absolute()} and "
        f"{under}); record one with `micmon record {sample}`"
    )


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
    from micmon.labels import format_time, segment_levels

    return [
        (
            format_time(seg.start),
            format_time(seg.end or duration),
            seg.label,
            f"{(seg.end or duration) - seg.start:.1f}",
            console.fmt_db(level),
        )
        for seg, level in segment_levels(labels, duration, power)
    ]


def _check(cfg: ResolvedConfig, ffmpeg_bin: str) -> None:
    """Validate every sample folder under audio_dir; list the problems, raise if there are any."""
    from micmon.errors import LabelsError
    from micmon.labels import check_folders

    problems = check_folders(
        cfg.existing_dir("paths.audio_dir"), known=cfg.config.training.labels, ffmpeg_bin=ffmpeg_bin
    )
    if problems:
        console.result(
            console.table("problems", ["sample", "problem"], ((p.folder, p.problem) for p in problems))
        )
        raise LabelsError(
            f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in "
            f"{cfg.config.paths.audio_dir}; fix them and run --check again"
        )
    console.result(f"all sample folders under {cfg.config.paths.audio_dir} are fine")


def label(
    sample: Annotated[
        str | None,
        typer.Argument(
            metavar="SAMPLE",
            help="Sample folder: a path, or a folder name under audio_dir.",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TIME=LABEL...",
            help="Pairs to add (TIME as seconds, MM:SS or HH:MM:SS[.fff]).",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate every sample folder under audio_dir and list all problems."),
    ] = False,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest", help="Propose boundaries from loudness changes; prints a labels.json draft."
        ),
    ] = False,
    audio_dir: Annotated[Path | None, config_option("paths.audio_dir", "--audio-dir")] = None,
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
    from micmon.labels import (
        Labels,
        find_labels_file,
        format_time,
        loudness_profile,
        suggest_labels,
    )

    cfg = resolve()
    ffmpeg_bin = cfg.config.audio.ffmpeg
    if check:
        _check(cfg, ffmpeg_bin)
        return
    if sample is None:
        raise ParameterError(
            "SAMPLE: name a sample folder, or use --check; e.g. `micmon label sample_1`", parameter="SAMPLE"
        )
    folder = find_sample(sample, cfg)
    audio = find_audio_file(folder)
    if audio is None:
        raise AudioError(
            f"{folder}: no audio file (audio.mp3, audio.wav...); record one with "
            f"`micmon record {folder.name}`"
        )
    duration = probe_duration(audio, ffmpeg_bin=ffmpeg_bin)
    labels_path = folder / "labels.json"
    existing = Labels.load(labels_path) if find_labels_file(folder) else None
    background = cfg.config.training.background_label

    if suggest:
        names = [n for n in cfg.config.training.labels if n != background]
        draft = suggest_labels(
            loudness_profile(audio, ffmpeg_bin=ffmpeg_bin),
            background=background,
            foreground=names[0] if names else "positive",
        )
        console.out.print_json(json.dumps(draft))
        console.info(f"review it, then save it as {labels_path}")
        return

    if pairs:
        new = Labels(_pairs(pairs), source="command line")
        late = new.past(duration)
        if late:
            raise LabelsError(
                f"{format_time(late[0])}: past the end of the recording "
                f"({format_time(duration)}); use a time before it"
            )
        labels = existing.merged(new) if existing is not None else new
        labels.save(labels_path)
        console.info(f"saved {labels_path}")
    elif existing is None:
        raise LabelsError(
            f"{labels_path}: no labels yet; add some, e.g. `micmon label {sample} 00:00={background}`"
        )
    else:
        labels = existing
    power = loudness_profile(audio, ffmpeg_bin=ffmpeg_bin)
    console.result(
        console.table(
            f"{folder.name}: {format_time(duration)}",
            ["start", "end", "label", "seconds", "dBFS"],
            _timeline(labels, duration, power),
            numeric=("seconds", "dBFS"),
        )
    )
    for past_end in labels.past(duration):  # left out of the timeline, but not silently
        console.warn(
            f"{labels_path}: the label at {format_time(past_end)} is past the end of the "
            f"recording ({format_time(duration)}) and labels nothing; remove it"
        )
