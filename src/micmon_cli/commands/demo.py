"""`micmon demo`: the whole job on generated audio: record-like data, datagen, train, predict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, Force
from micmon_cli.reports import train_with_progress

if TYPE_CHECKING:
    from micmon.detect import Detection


def demo(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder for the demo workspace (created).")
    ] = Path("micmon-demo"),
    ffmpeg: FFmpeg = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the generated audio.")] = 0,
    force: Force = False,
) -> None:
    """Try micmon without a microphone: generate labelled recordings of an alarm clock beeping over noise and chatter, then run datagen, train and predict on a recording the model has never heard, and report what it found.

    Everything lands in DIR (audio/, data/, model/, test/ and a micmon.yaml), so you can rerun
    any step yourself, e.g. `micmon --config DIR/micmon.yaml predict DIR/test`.

    Example: micmon demo ~/micmon-demo
    """  # noqa: E501 - the summary is one paragraph, wrapped by the help renderer
    from micmon import demo as workspace
    from micmon.dataset.generate import generate, plan
    from micmon.detect import detections, model_hop, model_settings
    from micmon.evaluate import score_recording
    from micmon.model import Model
    from micmon.training import training_options
    from micmon_cli.config import Flag, load_config

    started = time.monotonic()
    workspace.prepare(directory, force=force)
    console.info(
        f"[bold]1/4[/bold] generating {workspace.TRAIN_RECORDINGS} labelled recordings "
        f"and a test recording in {directory}"
    )
    test_events = workspace.write_workspace(directory, seed=seed, ffmpeg_bin=ffmpeg or "ffmpeg")
    cfg = load_config(directory / "micmon.yaml", [Flag("audio.ffmpeg", ffmpeg, "--ffmpeg")])
    c = cfg.config

    console.info("[bold]2/4[/bold] micmon datagen")
    work = plan(c.paths.audio_dir, c.paths.datasets_dir, overwrite=True, ffmpeg_bin=c.audio.ffmpeg)
    generate(
        work,
        c.feature_spec(),
        ffmpeg_bin=c.audio.ffmpeg,
        jobs=2,
        overwrite=True,
        background_labels=[c.training.background_label],
    )
    console.info("[bold]3/4[/bold] micmon train")
    result = train_with_progress(c.paths.datasets_dir, training_options(c.training.model_dump()))
    result.save(c.paths.model_dir, overwrite=True)

    console.info("[bold]4/4[/bold] micmon predict on the test recording (not used in training)")
    model = Model.load(c.paths.model_dir)
    scored = score_recording(directory / "test", model, ffmpeg_bin=c.audio.ffmpeg)
    found = detections(
        scored.scores,
        scored.times,
        model.labels,
        model_settings(model.metadata, model.labels),
        window_seconds=scored.window_seconds,
        hop_seconds=scored.hop_seconds,
        levels_dbfs=scored.levels,
    )
    predicted = [model.labels[int(i)] for i in scored.scores.argmax(axis=1)]
    correct = sum(p == (t or workspace.BACKGROUND) for p, t in zip(predicted, scored.truth, strict=True))
    _summary(found, test_events, correct, len(predicted), time.monotonic() - started)
    assert model.spec is not None
    console.info(
        f"(windows every {model_hop(model.metadata, model.spec.window_seconds):g} s, as "
        f"`micmon monitor` listens) next: record your own sound with `micmon record`, or "
        f"explore `micmon --config {directory / 'micmon.yaml'} config`"
    )


def _summary(
    found: list[Detection], truth: list[tuple[float, float]], correct: int, windows: int, seconds: float
) -> None:
    """Print the detected alarms against the real ones."""
    from micmon.labels import format_time

    def real(d: Detection) -> bool:
        return any(d.start < end and d.end > start for start, end in truth)

    hits = sum(any(d.start < end and d.end > start for d in found) for start, end in truth)
    false_alarms = sum(not real(d) for d in found)
    console.result(
        console.table(
            "alarms detected in test/audio.mp3",
            ["start", "end", "peak", "real alarm?"],
            [
                (
                    format_time(d.start),
                    format_time(d.end),
                    f"{d.peak:.2f}",
                    "yes" if real(d) else "false alarm",
                )
                for d in found
            ],
            numeric=("peak",),
        )
    )
    console.result(
        console.table(
            "the real alarms", ["start", "end"], [(format_time(s), format_time(e)) for s, e in truth]
        )
    )
    console.result(
        f"found {hits} of {len(truth)} alarms, {false_alarms} false alarm"
        f"{'' if false_alarms == 1 else 's'}; {correct}/{windows} windows "
        f"({correct / max(windows, 1):.0%}) labelled correctly [{seconds:.0f} s]"
    )
