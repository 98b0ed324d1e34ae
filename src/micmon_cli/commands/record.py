"""`micmon record`: capture from a device into `audio_dir/NAME/audio.<fmt>` with a live level meter."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import Channels, Device, FFmpeg, Force, SampleRate, System, resolve
from micmon_cli.options import config_option

if TYPE_CHECKING:
    from micmon.audio.recorder import Recording


def _meter() -> Callable[[Recording], None]:
    """Return a tick callback drawing elapsed time and a dBFS bar in place on stderr."""
    from rich.live import Live
    from rich.text import Text

    live = Live(console=console.err, refresh_per_second=10, transient=True)
    live.start()

    def tick(rec: Recording) -> None:
        level = rec.level if math.isfinite(rec.level) else -90.0
        filled = max(0, min(40, int((level + 60) / 60 * 40)))
        colour = "red" if level > -3 else "yellow" if level > -12 else "green"
        text = Text.assemble(
            ("● REC ", "bold red"),
            f"{console.fmt_seconds(rec.seconds):>8}  ",
            ("█" * filled, colour),
            ("·" * (40 - filled), "dim"),
            f"  {console.fmt_db(rec.level):>6} dBFS",
        )
        live.update(text)
        if rec._proc is not None and rec._proc.poll() is not None:
            live.stop()

    tick.live = live  # type: ignore[attr-defined]
    return tick


def record(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="Sample folder to create under audio_dir (default: the next free sample_N).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "-t",
            help="Stop after this long (seconds or MM:SS); default: until Ctrl-C.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[str | None, config_option("audio.format", "--format")] = None,
    system: System = None,
    device: Device = None,
    sample_rate: SampleRate = None,
    channels: Channels = None,
    audio_dir: Annotated[Path | None, config_option("paths.audio_dir", "--audio-dir")] = None,
    ffmpeg: FFmpeg = None,
    force: Force = False,
) -> None:
    """Record from the microphone into a new sample folder, showing elapsed time and input level.

    Ctrl-C (or SIGTERM) stops the recording and keeps a complete, playable file. Any ffmpeg input
    works: --system alsa|pulse|avfoundation|dshow|lavfi, with --device naming the input.

    Example: micmon record baby_cry_1 --device plughw:1,0 --duration 10:00
    """
    from micmon._io import removed_if_failed
    from micmon.audio.directory import AUDIO_EXTENSIONS
    from micmon.audio.recorder import CODECS, NAME_RE, SILENT_DBFS, Recording, next_sample_name
    from micmon.errors import ParameterError
    from micmon.labels import parse_time

    cfg = resolve()
    c = cfg.config
    seconds = parse_time(duration, name="--duration") if duration is not None else None
    if seconds is not None and seconds <= 0:
        raise ParameterError(
            f"--duration: must be > 0, got {duration!r}", parameter="--duration", value=duration
        )
    root = c.paths.audio_dir
    name = name or next_sample_name(root)
    if not NAME_RE.match(name):
        raise ParameterError(
            f"NAME: {name!r} is not a folder name; use letters, digits, _ or -", parameter="NAME"
        )
    folder = root / name
    target = folder / f"audio.{c.audio.format}"
    if folder.exists() and not force:
        raise ParameterError(
            f"{folder}: already exists; choose another NAME or use --force to record over it",
            parameter="NAME",
        )
    recorder = Recording(
        target,
        system=c.audio.system,
        device=c.audio.device,
        sample_rate=c.audio.sample_rate,
        channels=c.audio.channels,
        duration=seconds,
        codec_args=CODECS[c.audio.format],
        ffmpeg_bin=c.audio.ffmpeg,
    )
    console.info(
        f"recording {c.audio.system}:{c.audio.device} to {target}" + ("" if seconds else " (Ctrl-C to stop)")
    )
    tick = _meter() if console.interactive() else None
    try:
        with removed_if_failed(folder):  # a failed recording leaves no empty sample folder
            recorder.run(tick)
    finally:
        if tick is not None:
            tick.live.stop()  # type: ignore[attr-defined]
    for ext in AUDIO_EXTENSIONS:  # --force: the new recording replaces the old in any format
        old = folder / f"audio.{ext}"
        if old != target and old.exists():
            old.unlink()
    if folder.joinpath("labels.json").exists():
        console.warn(f"{folder / 'labels.json'} is from the earlier recording; check it")
    level = recorder.mean_dbfs
    console.result(f"saved {target} ({recorder.seconds:.1f} s, mean level {console.fmt_db(level)} dBFS)")
    if level < SILENT_DBFS:
        console.warn(
            f"the recording is silent (below {SILENT_DBFS} dBFS): check --device and "
            "the input volume (alsamixer / pavucontrol)"
        )
    console.info(f"next: label it, e.g. `micmon label {name} 00:00=negative 00:05=positive`")
