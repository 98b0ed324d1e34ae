"""`micmon predict`: score every window of audio files with a trained model (LiteRT, no TensorFlow)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, ModelDir, resolve
from micmon_cli.options import config_option

if TYPE_CHECKING:
    import numpy as np

    from micmon.detect import Detection


def _window_lines(
    path: str,
    labels: list[str],
    times: np.ndarray,
    scores: np.ndarray,
    window: float,
    *,
    as_json: bool,
    background: str,
) -> None:
    """Print one line per scored window (text, or one JSON object each)."""
    from micmon.labels import format_time

    styled = console.out.is_terminal and not as_json
    for start, row in zip(times, scores, strict=True):
        best = int(row.argmax())
        label, confidence = labels[best], float(row[best])
        if as_json:
            line = json.dumps(
                {
                    "type": "window",
                    "file": path,
                    "start": round(float(start), 3),
                    "end": round(float(start) + window, 3),
                    "label": label,
                    "confidence": round(confidence, 4),
                    "scores": {k: round(float(v), 4) for k, v in zip(labels, row, strict=True)},
                }
            )
        else:
            line = (
                f"  {format_time(float(start)):>9} - {format_time(float(start) + window):<9}  "
                f"{label:<12} {confidence:.2f}"
            )
        if styled:
            console.out.print(
                line, style="dim" if label == background else "bold", markup=False, highlight=False
            )
        else:  # plain writes: a Rich print costs ~1 ms, as much as scoring the window
            console.out.file.write(line + "\n")


def _events(path: str, found: list[Detection], windows: int, *, as_json: bool) -> None:
    """Print the detected events: JSON lines marked "event", or a table."""
    from micmon.labels import format_time

    if as_json:
        for d in found:
            console.out.file.write(
                json.dumps(
                    {"type": "event", "file": path, **d.to_dict(), "duration": round(d.end - d.start, 3)}
                )
                + "\n"
            )
    rows = [
        (d.label, format_time(d.start), format_time(d.end), f"{d.end - d.start:.1f}", f"{d.peak:.2f}")
        for d in found
    ]
    plural = "" if len(found) == 1 else "s"
    summary = console.table(
        f"{Path(path).name}: {len(found)} event{plural} in {windows} windows",
        ["label", "start", "end", "seconds", "peak"],
        rows,
        numeric=("seconds", "peak"),
    )
    if not as_json:
        console.result(summary)
    elif not console.state.quiet:
        console.err.print(summary)


def predict(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILES...",
            help="Audio files (any format ffmpeg reads) or sample folders.",
            show_default=False,
        ),
    ],
    model_dir: ModelDir = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="Start this far into each file (seconds or MM:SS).", show_default=False),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "-t",
            help="Score only this much of each file (seconds or MM:SS).",
            show_default=False,
        ),
    ] = None,
    hop: Annotated[float | None, config_option("monitor.hop", "--hop")] = None,
    threshold: Annotated[float | None, config_option("monitor.threshold", "--threshold", "-T")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout: one per window, then one per event.")
    ] = False,
    batch_size: Annotated[int | None, config_option("predict.batch_size", "--batch-size")] = None,
    ffmpeg: FFmpeg = None,
) -> None:
    """Classify each window of the given recordings, then list the events `micmon monitor` would raise.

    Windows come every hop seconds, as in `micmon monitor`, and the events come from the same
    detector with the model's calibrated settings and the `monitor:` config section, so a
    recording gives the same events here as replayed through `micmon monitor --input`.

    Example: micmon predict --model ~/sound/model kitchen.mp3 --start 1:00 --duration 10:00
    """
    from micmon.audio.check import check_input
    from micmon.audio.directory import audio_input
    from micmon.batch import Batch
    from micmon.detect import detections, model_hop, model_settings
    from micmon.errors import AudioError
    from micmon.evaluate import score_recording
    from micmon.labels import parse_time
    from micmon.model import Model

    cfg = resolve()
    c = cfg.config
    offset = parse_time(start, name="--start") if start is not None else 0.0
    length = parse_time(duration, name="--duration") if duration is not None else None
    model = Model.load(cfg.existing_dir("paths.model_dir"))
    assert model.spec is not None
    window = model.spec.window_seconds
    labels = list(model.labels)
    settings = model_settings(
        model.metadata, labels, overrides=cfg.detector_overrides(), background_label=cfg.background_label()
    )
    window_hop = model_hop(model.metadata, window, c.monitor.hop)
    background = cfg.background_label() or ""
    # A bad file is reported and the others are still scored; exit 1 at the end.
    batch = Batch(on_error=console.error, total=len(files))
    for name in files:
        with batch.item(name):
            path = audio_input(name)
            checked = check_input(
                path, model.spec, start=offset, duration=length, hop=window_hop, ffmpeg_bin=c.audio.ffmpeg
            )
            for warning in checked.warnings:
                console.warn(warning)
            if checked.problem:
                raise AudioError(checked.problem)
            if not as_json:
                console.result(f"[bold]{path}[/bold]")
            scored = score_recording(
                path,
                model,
                hop=window_hop,
                start=offset,
                duration=length,
                require_labels=False,
                batch_size=c.predict.batch_size,
                ffmpeg_bin=c.audio.ffmpeg,
                on_scores=partial(
                    _window_lines, path, labels, window=window, as_json=as_json, background=background
                ),
            )
            found = detections(
                scored.scores,
                scored.times,
                labels,
                settings,
                window_seconds=scored.window_seconds,
                hop_seconds=scored.hop_seconds,
                levels_dbfs=scored.levels,
            )
            _events(path, found, len(scored.times), as_json=as_json)
    batch.finish()
