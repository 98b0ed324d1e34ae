"""One module per subcommand, plus the options several of them share (declared once here).

Command modules import only typer at module level: the library, pydantic and numpy load inside the
command function, so `micmon --help` stays instant. An option bound to a config key
(`config_option`) takes its help, choices and default from the config schema; `resolve()` applies
the options given on the command line over the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from micmon_cli.options import config_option, resolve

__all__ = [
    "Channels",
    "Device",
    "FFmpeg",
    "Force",
    "HighFreq",
    "LowFreq",
    "ModelDir",
    "SampleRate",
    "System",
    "WindowSeconds",
    "Bins",
    "resolve",
]

# -- shared options (None means "take it from the config") --------------------------------------
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output.")]
FFmpeg = Annotated[str | None, config_option("audio.ffmpeg", "--ffmpeg")]
SampleRate = Annotated[int | None, config_option("audio.sample_rate", "--sample-rate", "-r")]
Channels = Annotated[int | None, config_option("audio.channels", "--channels")]
System = Annotated[str | None, config_option("audio.system", "--system")]
Device = Annotated[str | None, config_option("audio.device", "--device")]
WindowSeconds = Annotated[float | None, config_option("features.window_seconds", "--window-seconds", "-w")]
LowFreq = Annotated[float | None, config_option("features.low_freq", "--low")]
HighFreq = Annotated[float | None, config_option("features.high_freq", "--high")]
Bins = Annotated[int | None, config_option("features.bins", "--bins", "-b")]
ModelDir = Annotated[Path | None, config_option("paths.model_dir", "--model", "-m")]
