"""The `micmon` Typer app: global options, subcommand registration and the single error boundary."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import micmon_cli
from micmon.errors import MicmonError
from micmon_cli import console
from micmon_cli.options import MicmonCommand

#: Exit code for a MicmonError (usage errors exit with 2, as Click does).
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class MicmonGroup(TyperGroup):
    """The one place where a MicmonError becomes a red line and exit code 1."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        """Parse the global options; flags show no value placeholder in the help."""
        for param in self.get_params(ctx):
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        """Run the subcommand, turning MicmonError into one red line (traceback with --verbose)."""
        try:
            return super().invoke(ctx)
        except MicmonError as exc:
            if console.state.verbose:
                console.err.print_exception(show_locals=False)
            console.error(str(exc))
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="micmon",
    cls=MicmonGroup,
    help="Learn to recognise a sound from a few labelled recordings, then find it in files or "
         "live from a microphone.\n\nStart with `micmon demo`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"micmon {micmon_cli.__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", metavar="FILE", help="YAML config file (default: $MICMON_CONFIG, ./micmon.yaml, "
        "~/.config/micmon/micmon.yaml).", dir_okay=False, show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="More detail; tracebacks on errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="Only results and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Global options, given before the subcommand."""
    console.configure(config_path=config, verbose=verbose, quiet=quiet and not verbose)


def add_command(name: str, *, module: str | None = None) -> None:
    """Register `micmon_cli.commands.<name>`'s function `<name>` as subcommand `name`."""
    mod = importlib.import_module(module or f"micmon_cli.commands.{name}")
    func = getattr(mod, name.replace("-", "_"))
    app.command(name, cls=MicmonCommand)(func)


# One line per subcommand, in the order `micmon --help` lists them.
add_command("demo")
add_command("record")
add_command("label")
add_command("datagen")
add_command("train")
add_command("predict")
add_command("monitor")
add_command("events")
add_command("evaluate")
add_command("config")


def main() -> None:
    """Entry point of the `micmon` script."""
    sys.exit(app(prog_name="micmon"))
