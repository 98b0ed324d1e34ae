"""`micmon datagen`: turn labelled sample folders into one .npz dataset each."""

from __future__ import annotations

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
    SampleRate,
    WindowSeconds,
    resolve,
)
from micmon_cli.options import config_argument, config_option

if TYPE_CHECKING:
    from micmon.dataset.generate import FolderResult
    from micmon.features import FeatureSpec


def _report(results: list[FolderResult], root: Path) -> None:
    labels = sorted({name for r in results for name in r.counts})
    rows = []
    for r in results:
        try:
            name = str(Path(r.folder).relative_to(root)) or Path(r.folder).name
        except ValueError:
            name = r.folder
        rows.append((name, *(r.counts.get(label, 0) for label in labels), r.skipped, f"{r.seconds:.0f}"))
    totals = (
        "total",
        *(sum(r.counts.get(label, 0) for r in results) for label in labels),
        sum(r.skipped for r in results),
        f"{sum(r.seconds for r in results):.0f}",
    )
    console.result(
        console.table(
            "windows per label",
            ["sample", *labels, "unlabelled", "seconds"],
            [*rows, totals],
            numeric=(*labels, "unlabelled", "seconds"),
        )
    )
    if results:
        console.info(f"wrote {len(results)} datasets to {results[0].output.parent}")


def _warn_band(results: list[FolderResult], spec: FeatureSpec) -> None:
    from micmon.dataset.band import BandPower, band_warnings

    powers: dict[str, BandPower] = {}
    for r in results:
        for label, power in r.band.items():
            powers[label] = powers.get(label, BandPower()) + power
    for line in band_warnings(powers, spec):
        console.warn(line)


def datagen(
    audio_dir: Annotated[
        Path | None, config_argument("paths.audio_dir", "AUDIO_DIR", help="folder of sample folders")
    ] = None,
    datasets_dir: Annotated[
        Path | None,
        config_argument("paths.datasets_dir", "DATASETS_DIR", help="output folder for the .npz datasets"),
    ] = None,
    low: LowFreq = None,
    high: HighFreq = None,
    bins: Bins = None,
    window_seconds: WindowSeconds = None,
    sample_rate: SampleRate = None,
    channels: Channels = None,
    feature: Annotated[str | None, config_option("features.feature", "--feature")] = None,
    ffmpeg: FFmpeg = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Sample folders processed in parallel.")
    ] = 1,
    force: Force = False,
) -> None:
    """Compute the features of every labelled window of every sample folder: one .npz each.

    Each sample folder under AUDIO_DIR (audio.mp3 + labels.json) becomes DATASETS_DIR/<name>.npz
    holding the features, the label of each window and the feature settings. A label whose
    sound lies mostly outside the analysed band (above 8 kHz at the default 16 kHz) gets a
    warning naming the setting to change.

    Example: micmon datagen --low 250 --high 7500 --bins 100 ~/sound/audio ~/sound/data
    """
    from micmon.batch import Batch
    from micmon.dataset.generate import generate, plan

    cfg = resolve()
    c = cfg.config
    root = cfg.existing_dir("paths.audio_dir")
    spec = c.feature_spec()
    # A bad sample folder is reported and the others are still processed; exit 1 at the end.
    batch = Batch(what="sample folder", on_error=console.error)
    work = plan(root, c.paths.datasets_dir, overwrite=force, ffmpeg_bin=c.audio.ffmpeg, batch=batch)
    console.info(
        f"{len(work.folders)} sample folders, {console.fmt_seconds(work.seconds)} of "
        f"audio -> {c.paths.datasets_dir}"
    )
    console.debug(f"features: {spec.to_json()}")
    with console.progress(seconds=True) as bar:
        task = bar.add_task("folders", total=len(work.folders), audio="")
        done = [0.0]

        def on_seconds(seconds: float) -> None:
            done[0] += seconds
            bar.update(
                task, audio=f"{console.fmt_seconds(done[0])}/{console.fmt_seconds(work.seconds)} audio"
            )

        results = generate(
            work,
            spec,
            ffmpeg_bin=c.audio.ffmpeg,
            jobs=jobs,
            overwrite=force,
            background_labels=[c.training.background_label],
            batch=batch,
            on_seconds=on_seconds,
            on_folder=lambda _: bar.advance(task),
        )
    _report(results, root)
    _warn_band(results, spec)
    batch.finish()
