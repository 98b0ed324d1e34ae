"""The `micmon` Typer app: global options, subcommand registration and the single error boundary."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

import micmon_cli
from micmon._deps import missing_dependency
from micmon._io import describe_os_error
from micmon.errors import MicmonError
from micmon_cli import console
from micmon_cli.options import MicmonCommand, hide_flag_metavars

#: Exit code for a MicmonError (usage errors exit with 2, as Click does).
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


def _fail(error: MicmonError | str) -> NoReturn:
    """Print `error` as one red line (after the traceback with --verbose) and exit 1."""
    if console.state.verbose:
        console.err.print_exception(show_locals=False)
    console.error(str(error))
    raise typer.Exit(EXIT_ERROR) from None


class MicmonGroup(TyperGroup):
    """The one place where a MicmonError or an OSError becomes a red line and exit code 1."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        """Parse the global options; flags show no value placeholder in the help."""
        hide_flag_metavars(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        """Run the subcommand, turning MicmonError/OSError into one red line (traceback with --verbose)."""
        try:
            return super().invoke(ctx)
        except MicmonError as exc:
            _fail(exc)
        except ImportError as exc:
            # A command that imports an optional dependency itself (keras, matplotlib) still gets
            # the library's one-line "pip install 'micmon[extra]'" message.
            command = ctx.invoked_subcommand
            missing = missing_dependency(exc, purpose=f"micmon {command}" if command else None)
            if missing is None:
                raise
            _fail(missing)
        except BrokenPipeError:
            # The reader went away (`micmon ... | head`): stop quietly, as a shell tool does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:
            # The file system said no (a folder where a file goes, read-only, disk full, no
            # permission): name the path and the fix, like a MicmonError.
            _fail(describe_os_error(exc))
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


def version_lines() -> list[str]:
    """Return what `micmon --version` prints: the version, the LiteRT runtime, training support."""
    import platform
    from importlib.metadata import packages_distributions, version

    from micmon._deps import install_command
    from micmon.model.runtime import runtime

    try:
        rt = runtime()
        scoring = f"{rt.name} {rt.version}"
    except MicmonError as exc:
        scoring = f"none ({exc})"
    # Without importing it (seconds): which installed distribution provides the tensorflow module
    # (tensorflow, tensorflow-cpu, ...).
    providers = packages_distributions().get("tensorflow", [])
    dist = "tensorflow" if "tensorflow" in providers else next(iter(providers), None)
    training = f"{dist} {version(dist)}" if dist else f"not installed ({install_command('train')})"
    return [
        f"micmon {micmon_cli.__version__}",
        f"runtime: {scoring}",
        f"training: {training}",
        f"python: {platform.python_version()} ({platform.system()} {platform.machine()})",
    ]


def _version(value: bool) -> None:
    if value:
        for line in version_lines():
            typer.echo(line)
        raise typer.Exit()


@app.callback()
def _global(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="YAML config file (default: $MICMON_CONFIG, ./micmon.yaml, ~/.config/micmon/micmon.yaml).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail; tracebacks on errors.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
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
