"""`micmon datagen`: turn labelled sample folders into one .npz dataset each."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import (
    Bins,
    Channels,
    FFmpeg,
    Force,
    HighFreq,
    LowFreq,
    SampleDuration,
    SampleRate,
    feature_flags,
    resolve,
)

if TYPE_CHECKING:
    from micmon.audio import AudioDirectory
    from micmon.features import FeatureSpec


@dataclass
class FolderResult:
    """What one sample folder produced."""

    folder: str
    output: Path
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


def dataset_name(folder: Path, root: Path) -> str:
    """Return the .npz file name for a sample folder: its path below `root`, '__'-joined."""
    rel = folder.relative_to(root) if folder != root else Path(folder.name)
    return "__".join(rel.parts) + ".npz"


def process_folder(directory: AudioDirectory, output: Path, spec: FeatureSpec, *,
                   ffmpeg_bin: str, overwrite: bool,
                   on_seconds: Callable[[float], None] | None = None) -> FolderResult:
    """Write the windows of one sample folder to `output` (atomically); return the counts."""
    from micmon.audio import AudioFile
    from micmon.dataset import DatasetWriter
    from micmon.errors import DatasetError, MicmonError

    result = FolderResult(folder=directory.path, output=output)
    try:
        with AudioFile(directory, sample_duration=spec.window_seconds,
                       sample_rate=spec.sample_rate, channels=spec.channels,
                       ffmpeg_bin=ffmpeg_bin) as reader, \
                DatasetWriter(output, spec=spec, overwrite=overwrite, source=directory.path,
                              write_empty=False) as writer:
            for window in reader:
                writer += window
                result.seconds += window.duration
                if on_seconds is not None:
                    on_seconds(window.duration)
            result.counts = writer.label_counts
            result.skipped = writer.skipped
        if not writer.written:  # an empty dataset would only confuse train
            raise DatasetError(f"no labelled {spec.window_seconds:g} s window (the recording is "
                               "shorter than one window, or its labels cover none of it); no "
                               "dataset written")
    except MicmonError as exc:
        text = str(exc)
        # Name the sample folder unless the library's message already does.
        raise type(exc)(text if directory.path in text else f"{directory.path}: {text}") from None
    return result


def run_datagen(audio_dir: Path | None, datasets_dir: Path | None, *, low: float | None,
                high: float | None, bins: int | None, sample_duration: float | None,
                sample_rate: int | None, channels: int | None, ffmpeg: str | None,
                jobs: int, force: bool, feature: str | None = None) -> list[FolderResult]:
    """Generate the datasets (shared by `micmon datagen` and `micmon-datagen`)."""
    from concurrent.futures import ThreadPoolExecutor

    from micmon._io import check_writable_dir
    from micmon.audio import AudioDirectory, probe_duration
    from micmon.batch import Batch
    from micmon.errors import AudioError, DatasetError, ParameterError
    from micmon_cli.config import Flag

    cfg = resolve(Flag("paths.audio_dir", audio_dir, "AUDIO_DIR"),
                  Flag("paths.datasets_dir", datasets_dir, "DATASETS_DIR"),
                  Flag("features.feature", feature, "--feature"),
                  *feature_flags(sample_rate=sample_rate, channels=channels,
                                 sample_duration=sample_duration, low=low, high=high, bins=bins,
                                 ffmpeg=ffmpeg))
    if jobs < 1:
        raise ParameterError(f"--jobs: must be at least 1, got {jobs}")
    c = cfg.config
    root = cfg.existing_dir("paths.audio_dir")
    spec = c.feature_spec()
    folders = AudioDirectory.scan(root)
    if not folders:
        raise AudioError(f"{root}: no sample folders (a folder with audio.mp3 and labels.json); "
                         "record one with `micmon record` and label it with `micmon label`")
    out_dir = c.paths.datasets_dir
    outputs = [out_dir / dataset_name(Path(d.path), root) for d in folders]
    existing = [p for p in outputs if p.exists()]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise DatasetError(f"{existing[0]}{more}: already exist; use --force to regenerate")
    check_writable_dir(out_dir, what="datasets folder")
    # A bad sample folder is reported and the others are still processed; exit 1 at the end.
    batch = Batch(what="sample folder", on_error=console.error, total=len(folders))
    durations = []
    for d in list(folders):
        with batch.item(d.path):
            durations.append(probe_duration(d.audio_file, ffmpeg_bin=c.audio.ffmpeg))
        if d.path in batch.failed:
            outputs.pop(folders.index(d))
            folders.remove(d)
    console.info(f"{len(folders)} sample folders, {console.fmt_seconds(sum(durations))} of audio "
                 f"-> {out_dir}")
    console.debug(f"features: {spec.to_json()}")

    lock = threading.Lock()
    with console.progress(seconds=True) as bar:
        total = sum(durations)
        task = bar.add_task("folders", total=len(folders), audio="")
        done = [0.0]

        def on_seconds(seconds: float) -> None:
            with lock:
                done[0] += seconds
                bar.update(task, audio=f"{console.fmt_seconds(done[0])}/"
                                       f"{console.fmt_seconds(total)} audio")

        def work(i: int) -> FolderResult | None:
            result = None
            with batch.item(folders[i].path):
                result = process_folder(folders[i], outputs[i], spec, ffmpeg_bin=c.audio.ffmpeg,
                                        overwrite=force, on_seconds=on_seconds)
                result.seconds = durations[i]  # the recording's length, not its whole windows'
            bar.advance(task)
            return result

        workers = min(jobs, len(folders), os.cpu_count() or 1) if jobs > 1 else 1
        if workers == 1:
            finished = [work(i) for i in range(len(folders))]
        else:
            with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
                finished = list(pool.map(work, range(len(folders))))
    results = [r for r in finished if r is not None]
    _report(results, root)
    batch.finish()
    return results


def _report(results: list[FolderResult], root: Path) -> None:
    labels = sorted({name for r in results for name in r.counts})
    rows = []
    for r in results:
        try:
            name = str(Path(r.folder).relative_to(root)) or Path(r.folder).name
        except ValueError:
            name = r.folder
        rows.append((name, *(r.counts.get(label, 0) for label in labels), r.skipped,
                     f"{r.seconds:.0f}"))
    totals = ("total", *(sum(r.counts.get(label, 0) for r in results) for label in labels),
              sum(r.skipped for r in results), f"{sum(r.seconds for r in results):.0f}")
    tbl = console.table("windows per label", ["sample", *labels, "unlabelled", "seconds"],
                        [*rows, totals], numeric=(*labels, "unlabelled", "seconds"))
    console.result(tbl)
    if results:
        console.info(f"wrote {len(results)} datasets to {results[0].output.parent}")


def datagen(
    audio_dir: Annotated[Path | None, typer.Argument(
        help="Folder of sample folders (config: paths.audio_dir).", show_default=False)] = None,
    datasets_dir: Annotated[Path | None, typer.Argument(
        help="Output folder for the .npz datasets (config: paths.datasets_dir).",
        show_default=False)] = None,
    low: LowFreq = None,
    high: HighFreq = None,
    bins: Bins = None,
    sample_duration: SampleDuration = None,
    sample_rate: SampleRate = None,
    channels: Channels = None,
    feature: Annotated[str | None, typer.Option(
        "--feature", help="spectrum or logmel (config: features.feature).",
        show_default=False)] = None,
    ffmpeg: FFmpeg = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Sample folders processed in "
                                      "parallel.")] = 1,
    force: Force = False,
) -> None:
    """Compute the features of every labelled window of every sample folder: one .npz each.

    Each sample folder under AUDIO_DIR (audio.mp3 + labels.json) becomes DATASETS_DIR/<name>.npz
    holding the features, the label of each window and the feature settings.

    Example: micmon datagen --low 250 --high 7500 --bins 100 ~/sound/audio ~/sound/data
    """
    run_datagen(audio_dir, datasets_dir, low=low, high=high, bins=bins,
                sample_duration=sample_duration, sample_rate=sample_rate, channels=channels,
                ffmpeg=ffmpeg, jobs=jobs, force=force, feature=feature)
