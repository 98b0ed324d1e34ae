"""Turn a folder of labelled sample folders into one .npz dataset each (what `micmon datagen` runs)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from micmon._io import check_writable_dir, expand_path
from micmon.audio import AudioDirectory, AudioFile, probe_duration
from micmon.batch import Batch
from micmon.dataset.band import BandPower, label_band_power
from micmon.dataset.writer import DatasetWriter
from micmon.errors import AudioError, DatasetError, MicmonError, ParameterError
from micmon.features import FeatureSpec


@dataclass
class FolderResult:
    """What one sample folder produced."""

    folder: str
    output: Path
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    #: per sound label, the power it adds below, inside and above the features' band
    band: dict[str, BandPower] = field(default_factory=dict)


@dataclass
class Plan:
    """The sample folders found under an audio folder and the dataset file each one becomes."""

    root: Path
    folders: list[AudioDirectory]
    outputs: list[Path]
    durations: list[float]

    @property
    def seconds(self) -> float:
        """Total audio to process, in seconds."""
        return sum(self.durations)


def dataset_name(folder: Path, root: Path) -> str:
    """Return the .npz file name for a sample folder: its path below `root`, '__'-joined."""
    rel = folder.relative_to(root) if folder != root else Path(folder.name)
    return "__".join(rel.parts) + ".npz"


def plan(
    audio_dir: str | os.PathLike[str],
    datasets_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    ffmpeg_bin: str = "ffmpeg",
    batch: Batch | None = None,
) -> Plan:
    """Find the sample folders and name their outputs; refuse to overwrite without `overwrite`.

    With `batch`, a folder whose audio cannot be read is reported there and left out.
    """
    root = expand_path(audio_dir)
    folders = AudioDirectory.scan(root)
    if not folders:
        raise AudioError(
            f"{root}: no sample folders (a folder with audio.mp3 and labels.json); "
            "record one with `micmon record` and label it with `micmon label`"
        )
    out_dir = expand_path(datasets_dir)
    outputs = [out_dir / dataset_name(Path(d.path), root) for d in folders]
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise DatasetError(f"{existing[0]}{more}: already exist; use --force to regenerate")
    check_writable_dir(out_dir, what="datasets folder")
    if batch is not None and batch.total is None:
        batch.total = len(folders)  # one folder: its own error is the whole story
    kept: list[tuple[AudioDirectory, Path, float]] = []
    for folder, output in zip(folders, outputs, strict=True):
        with batch.item(folder.path) if batch is not None else nullcontext():
            kept.append((folder, output, probe_duration(folder.audio_file, ffmpeg_bin=ffmpeg_bin)))
    return Plan(root, [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept])


def process_folder(
    directory: AudioDirectory,
    output: Path,
    spec: FeatureSpec,
    *,
    ffmpeg_bin: str = "ffmpeg",
    overwrite: bool = False,
    background_labels: Sequence[str] | None = None,
    on_seconds: Callable[[float], None] | None = None,
    background_hop: float | None = None,
    short_sound_hop: float | None = None,
) -> FolderResult:
    """Write the windows of one sample folder to `output` (atomically); return the counts.

    With `background_labels`, a sound shorter than the window still labels the window holding
    most of it (see `Labels.label_for`). With them and overlapping windows (`spec.hop_seconds`
    below the window), windows are dense only around the sounds: a background window is kept
    once per window length (every `background_hop` seconds if given, rounded to a multiple of
    the hop), and one that holds part of a sound without being labelled with it is left out
    (neither a clean example of the sound nor of the background). With `short_sound_hop`
    (below `spec.hop_seconds`), a sound shorter than the window gets a window every
    `short_sound_hop` seconds instead, so that a short sound is not outnumbered by long ones.
    """
    for name, value in (("background_hop", background_hop), ("short_sound_hop", short_sound_hop)):
        if value is not None and not value > 0:
            raise ParameterError(f"{name}: must be > 0 seconds, got {value!r}", parameter=name, value=value)
    result = FolderResult(folder=directory.path, output=output)
    keep, read_hop = _dense_around_sounds(directory, spec, background_labels, background_hop, short_sound_hop)
    try:
        with (
            AudioFile(
                directory,
                window_seconds=spec.window_seconds,
                hop=read_hop,  # overlapping training windows, when the spec asks for them
                sample_rate=spec.sample_rate,
                channels=spec.channels,
                ffmpeg_bin=ffmpeg_bin,
                background_labels=background_labels,
            ) as reader,
            DatasetWriter(
                output, spec=spec, overwrite=overwrite, source=directory.path, write_empty=False
            ) as writer,
        ):
            reached = 0.0  # end of the audio read so far: overlapping windows count it once
            for window in reader:
                end = window.start + window.duration
                advance, reached = max(0.0, end - reached), max(reached, end)
                result.seconds += advance
                if on_seconds is not None:
                    on_seconds(advance)
                if keep is not None and not keep(window.start, window.label):
                    continue
                writer += window
            result.counts = writer.label_counts
            result.skipped = writer.skipped
        if not writer.written:  # an empty dataset would only confuse train
            raise DatasetError(
                f"no labelled {spec.window_seconds:g} s window (the recording is "
                "shorter than one window, or its labels cover none of it); no "
                "dataset written"
            )
    except MicmonError as exc:
        text = str(exc)
        # Name the sample folder unless the library's message already does.
        raise type(exc)(text if directory.path in text else f"{directory.path}: {text}") from None
    return result


def _dense_around_sounds(
    directory: AudioDirectory,
    spec: FeatureSpec,
    background_labels: Sequence[str] | None,
    background_hop: float | None = None,
    short_sound_hop: float | None = None,
) -> tuple[Callable[[float, str | None], bool] | None, float | None]:
    """Return the window filter of overlapping datagen (None: keep every window) and the hop to read at.

    The hop to read at is `spec.hop_seconds`, cut into steps of about `short_sound_hop` if given."""
    hop = spec.hop_seconds
    labels = directory.labels
    if hop is None or hop >= spec.window_seconds or not background_labels or labels is None:
        return None, hop
    quiet = set(background_labels)
    width = spec.window_seconds
    sounds = [(seg.label, seg.start, seg.end) for seg in labels.segments() if seg.label not in quiet]
    steps = max(1, int(round(hop / short_sound_hop))) if short_sound_hop is not None else 1
    step = hop / steps
    every = max(1, int(round((background_hop or width) / hop))) * steps

    def short(label: str, start: float) -> bool:
        return any(
            name == label and hi is not None and hi - lo < width and lo < start + width and start < hi
            for name, lo, hi in sounds
        )

    def keep(start: float, label: str | None) -> bool:
        index = int(round(start / step))
        if label is None or label not in quiet:
            return index % steps == 0 or (label is not None and short(label, start))
        if any(lo < start + width and (hi is None or start < hi) for _, lo, hi in sounds):
            return False  # holds part of a sound, labelled background: ambiguous
        return index % every == 0

    return keep, step


def generate(
    work: Plan,
    spec: FeatureSpec,
    *,
    ffmpeg_bin: str = "ffmpeg",
    jobs: int = 1,
    overwrite: bool = False,
    background_labels: Sequence[str] | None = None,
    batch: Batch | None = None,
    on_seconds: Callable[[float], None] | None = None,
    on_folder: Callable[[FolderResult | None], None] | None = None,
    measure_band: bool = True,
) -> list[FolderResult]:
    """Write the dataset of every planned sample folder, `jobs` folders at a time.

    With `batch`, a folder that fails is reported there and the others go on (call
    `batch.finish()` after); without, the first failure is raised. With `measure_band`, each
    result's `band` tells where its labelled sounds lie against the features' band
    (`micmon.dataset.band.band_warnings` words the labels that lie mostly outside it).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs: must be at least 1, got {jobs!r}", parameter="jobs", value=jobs)
    lock = threading.Lock()

    def counted(seconds: float) -> None:
        if on_seconds is not None:
            with lock:
                on_seconds(seconds)

    def one(i: int) -> FolderResult | None:
        result = None
        with batch.item(work.folders[i].path) if batch is not None else nullcontext():
            result = process_folder(
                work.folders[i],
                work.outputs[i],
                spec,
                ffmpeg_bin=ffmpeg_bin,
                overwrite=overwrite,
                background_labels=background_labels,
                on_seconds=counted,
            )
            result.seconds = work.durations[i]  # the recording's length, not its whole windows'
            if measure_band:
                result.band = label_band_power(
                    work.folders[i],
                    spec,
                    background_labels or [],
                    duration=work.durations[i],
                    ffmpeg_bin=ffmpeg_bin,
                )
        if on_folder is not None:
            on_folder(result)
        return result

    workers = min(jobs, len(work.folders), os.cpu_count() or 1)
    if workers <= 1:
        results = [one(i) for i in range(len(work.folders))]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, range(len(work.folders))))
    return [r for r in results if r is not None]
