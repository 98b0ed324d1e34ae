"""`micmon predict`: score every window of audio files with a trained model (LiteRT, no TensorFlow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, ModelDir, resolve

if TYPE_CHECKING:
    import numpy as np

    from micmon.model import Model


@dataclass
class Window:
    """One scored window."""

    file: str
    start: float
    end: float
    label: str
    confidence: float
    scores: dict[str, float]

    def to_json(self) -> str:
        """Return the window as one JSON line."""
        return json.dumps({"file": self.file, "start": round(self.start, 3),
                           "end": round(self.end, 3), "label": self.label,
                           "confidence": round(self.confidence, 4),
                           "scores": {k: round(v, 4) for k, v in self.scores.items()}})


@dataclass
class Event:
    """A run of consecutive windows with the same non-background label."""

    label: str
    start: float
    end: float
    peak: float
    windows: int


def score_file(model: Model, path: str, *, start: float = 0.0, duration: float | None = None,
               hop: float | None = None, batch_size: int = 64,
               ffmpeg_bin: str = "ffmpeg") -> Iterator[Window]:
    """Yield the scored windows of one file, scoring `batch_size` windows per model call."""
    from micmon.audio import AudioFile

    spec = model.spec
    assert spec is not None
    labels = model.labels
    with AudioFile(path, start=start, duration=duration, sample_duration=spec.window_seconds,
                   sample_rate=spec.sample_rate, channels=spec.channels, hop=hop,
                   ffmpeg_bin=ffmpeg_bin) as reader:
        batch = []
        for segment in reader:
            batch.append(segment)
            if len(batch) >= batch_size:
                yield from _score(model, path, batch, labels)
                batch = []
        if batch:
            yield from _score(model, path, batch, labels)


def _score(model: Model, path: str, batch: list, labels: list[str]) -> Iterator[Window]:
    probs: np.ndarray = model.predict_proba(batch)
    for segment, row in zip(batch, probs, strict=True):
        best = int(row.argmax())
        yield Window(path, segment.start, segment.end, labels[best], float(row[best]),
                     {name: float(p) for name, p in zip(labels, row, strict=True)})


def find_events(windows: list[Window], *, background: str, min_confidence: float = 0.0
                ) -> list[Event]:
    """Return runs of consecutive windows with the same label other than `background`."""
    events: list[Event] = []
    current: Event | None = None
    for w in windows:
        label = w.label if w.confidence >= min_confidence else background
        if label == background:
            current = None
            continue
        if current is not None and current.label == label and w.start <= current.end + 1e-6:
            current.end = w.end
            current.peak = max(current.peak, w.confidence)
            current.windows += 1
        else:
            current = Event(label, w.start, w.end, w.confidence, 1)
            events.append(current)
    return events


def _input_file(name: Path) -> str:
    """Return the audio file `name` designates: a file, or a sample folder's audio file."""
    from micmon._io import expand_path
    from micmon.audio.directory import find_audio_file
    from micmon.errors import AudioError

    path = expand_path(name)
    if path.is_dir():
        found = find_audio_file(path)
        if found is None:
            raise AudioError(f"{path}: a folder without an audio.* file; name an audio file")
        return str(found)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    return str(path)


def predict(
    files: Annotated[list[Path], typer.Argument(
        help="Audio files (any format ffmpeg reads) or sample folders.", show_default=False)],
    model_dir: ModelDir = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Start this far into each file (seconds or MM:SS).",
        show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", "-t", help="Score only this much of each file (seconds or MM:SS).",
        show_default=False)] = None,
    hop: Annotated[float | None, typer.Option(
        "--hop", help="Seconds between window starts (default: the window length).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per window on stdout, and nothing else.")] = False,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Windows per model call (config: predict.batch_size).",
        show_default=False)] = None,
    ffmpeg: FFmpeg = None,
) -> None:
    """Classify each window of the given recordings, then summarise the detected events.

    Prints one line per window (time range, label, confidence) and, per file, the runs of
    windows with a label other than the background label (training.background_label).

    Example: micmon predict --model ~/sound/model kitchen.mp3 --start 1:00 --duration 10:00
    """
    from micmon.audio.check import check_input
    from micmon.batch import Batch
    from micmon.errors import AudioError
    from micmon.labels import format_time, parse_time
    from micmon.model import Model
    from micmon_cli.config import Flag

    cfg = resolve(Flag("paths.model_dir", model_dir, "--model"),
                  Flag("predict.batch_size", batch_size, "--batch-size"),
                  Flag("audio.ffmpeg", ffmpeg, "--ffmpeg"))
    c = cfg.config
    offset = parse_time(start, name="--start") if start is not None else 0.0
    length = parse_time(duration, name="--duration") if duration is not None else None
    model = Model.load(cfg.existing_dir("paths.model_dir"))
    background = model.metadata.get("training", {}).get("background_label") \
        if cfg.source("training.background_label") == "default" else None
    background = background or c.training.background_label
    console.debug(f"model: {model.labels}, backend {model.backend}, {model.spec}")

    # A bad file is reported and the others are still scored; the exit code says so at the end.
    batch = Batch(on_error=console.error, total=len(files))
    for name in files:
        with batch.item(name):
            path = _input_file(name)
            checked = check_input(path, model.spec, start=offset, duration=length, hop=hop,
                                  ffmpeg_bin=c.audio.ffmpeg)
            for warning in checked.warnings:
                console.warn(warning)
            if checked.problem is not None:
                raise AudioError(checked.problem)
            windows: list[Window] = []
            if not as_json:
                console.result(f"[bold]{path}[/bold]")
            styled = console.out.is_terminal and not as_json
            for w in score_file(model, path, start=offset, duration=length, hop=hop,
                                batch_size=c.predict.batch_size, ffmpeg_bin=c.audio.ffmpeg):
                windows.append(w)
                if as_json:
                    line = w.to_json()
                else:
                    line = (f"  {format_time(w.start):>9} - {format_time(w.end):<9}  "
                            f"{w.label:<12} {w.confidence:.2f}")
                if styled:
                    console.out.print(line, style="dim" if w.label == background else "bold",
                                      markup=False, highlight=False)
                else:
                    # Plain writes: a Rich print costs ~1 ms, as much as scoring the window.
                    console.out.file.write(line + "\n")
            events = find_events(windows, background=background,
                                 min_confidence=c.predict.min_confidence)
            rows = [(e.label, format_time(e.start), format_time(e.end),
                     f"{e.end - e.start:.1f}", f"{e.peak:.2f}") for e in events]
            summary = console.table(f"{Path(path).name}: {len(events)} event"
                                    f"{'' if len(events) == 1 else 's'} in {len(windows)} windows",
                                    ["label", "start", "end", "seconds", "peak"], rows,
                                    numeric=("seconds", "peak"))
            if as_json:
                if not console.state.quiet:
                    console.err.print(summary)
            else:
                console.result(summary)
            if not windows:
                raise AudioError(f"{path}: no whole window to score; nothing was classified")
    batch.finish()
