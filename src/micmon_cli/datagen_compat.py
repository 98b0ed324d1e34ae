"""`micmon-datagen`: the original tool's command line, served by `micmon datagen`.

The original's flags (``--low``, ``--high``, ``-b/--bins``, ``-d/--sample-duration``,
``-r/--sample-rate``, ``-c/--channels``, ``--ffmpeg``, then ``AUDIO_DIR DATASETS_DIR``) map onto
the flags `micmon datagen` takes (``-d/--sample-duration`` is ``--window-seconds``, ``-c`` is
``--channels``), so this is the same command as a standalone program.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from micmon_cli import console
from micmon_cli.app import EXIT_ERROR
from micmon_cli.commands.datagen import datagen
from micmon_cli.options import MicmonCommand

compat = typer.Typer(
    name="micmon-datagen",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["--help"]},
)
compat.command(cls=MicmonCommand)(datagen)

#: The original tool's flag names -> micmon datagen's.
ORIGINAL_FLAGS = {"-d": "--window-seconds", "--sample-duration": "--window-seconds", "-c": "--channels"}


def translate(args: Sequence[str]) -> list[str]:
    """Return the original tool's arguments with its flag names replaced by micmon datagen's."""
    out = []
    for arg in args:
        name, sep, value = arg.partition("=")
        out.append(ORIGINAL_FLAGS.get(name, name) + sep + value if name in ORIGINAL_FLAGS else arg)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `micmon-datagen` script."""
    from micmon.errors import MicmonError

    console.configure(config_path=None, verbose=False, quiet=False)
    args = translate(sys.argv[1:] if argv is None else argv)
    if not any(a == "--feature" or a.startswith("--feature=") for a in args):
        # The original tool computes averaged spectra, whatever the config's default feature.
        args = ["--feature", "spectrum", *args]
    try:
        compat(args, prog_name="micmon-datagen")
    except MicmonError as exc:
        console.error(str(exc))
        sys.exit(EXIT_ERROR)
