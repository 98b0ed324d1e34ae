"""One module per subcommand, plus the options several of them share (declared once here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli.console import state

if TYPE_CHECKING:
    from micmon_cli.config import Flag, ResolvedConfig

# Command modules import only typer at module level: the library, pydantic and numpy load inside
# the command function, so `micmon --help` stays instant.

# -- shared options (None means "take it from the config") --------------------------------------
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output.")]
FFmpeg = Annotated[str | None, typer.Option("--ffmpeg", help="ffmpeg executable (config: "
                                            "audio.ffmpeg).", show_default=False)]
SampleRate = Annotated[int | None, typer.Option("--sample-rate", "-r", help="Sample rate in Hz "
                                                "(config: audio.sample_rate).", show_default=False)]
Channels = Annotated[int | None, typer.Option("--channels", "-c", help="Audio channels, mixed to "
                                              "mono (config: audio.channels).", show_default=False)]
System = Annotated[str | None, typer.Option("--system", help="ffmpeg input format: alsa, "
                                            "pulse, lavfi... (config: audio.system).",
                                            show_default=False)]
Device = Annotated[str | None, typer.Option("--device", help="Input device, e.g. "
                                            "plughw:1,0 (config: audio.device).",
                                            show_default=False)]
SampleDuration = Annotated[float | None, typer.Option(
    "--sample-duration", "-d", help="Window length in seconds (config: features.sample_duration).",
    show_default=False)]
LowFreq = Annotated[float | None, typer.Option("--low", help="Lowest frequency in Hz "
                                               "(config: features.low_freq).", show_default=False)]
HighFreq = Annotated[float | None, typer.Option("--high", help="Highest frequency in Hz "
                                                "(config: features.high_freq).",
                                                show_default=False)]
Bins = Annotated[int | None, typer.Option("--bins", "-b", help="Frequency bands "
                                          "(config: features.bins).", show_default=False)]
ModelDir = Annotated[Path | None, typer.Option("--model", "-m", help="Model folder "
                                               "(config: paths.model_dir).", show_default=False)]


def resolve(*flags: Flag) -> ResolvedConfig:
    """Load the config named by the global options, with the given flag overrides applied."""
    from micmon_cli.config import load_config

    return load_config(state.config_path, flags)


def feature_flags(*, sample_rate: int | None = None, channels: int | None = None,
                  sample_duration: float | None = None, low: float | None = None,
                  high: float | None = None, bins: int | None = None,
                  ffmpeg: str | None = None) -> list[Flag]:
    """Return the Flag overrides of the shared audio/feature options."""
    from micmon_cli.config import Flag

    return [
        Flag("audio.sample_rate", sample_rate, "--sample-rate"),
        Flag("audio.channels", channels, "--channels"),
        Flag("features.sample_duration", sample_duration, "--sample-duration"),
        Flag("features.low_freq", low, "--low"),
        Flag("features.high_freq", high, "--high"),
        Flag("features.bins", bins, "--bins"),
        Flag("audio.ffmpeg", ffmpeg, "--ffmpeg"),
    ]
