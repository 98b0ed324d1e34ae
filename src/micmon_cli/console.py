"""Rich output for the CLI: results on stdout, status and errors on stderr, global verbosity."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

#: Results (tables, predictions) go to stdout; everything else to stderr so pipes stay clean.
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


@dataclass
class State:
    """Global options given before the subcommand (`micmon -v --config x.yaml train`)."""

    config_path: Path | None = None
    verbose: bool = False
    quiet: bool = False


state = State()


def configure(*, config_path: Path | None, verbose: bool, quiet: bool) -> None:
    """Set the global options and route the library's log messages to stderr."""
    state.config_path = config_path
    state.verbose = verbose
    state.quiet = quiet
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logger = logging.getLogger("micmon")
    logger.setLevel(level)
    if not any(getattr(h, "_micmon_cli", False) for h in logger.handlers):
        from rich.logging import RichHandler

        handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
        handler._micmon_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def info(message: str) -> None:
    """Print a status line on stderr unless --quiet."""
    if not state.quiet:
        err.print(message)


def debug(message: str) -> None:
    """Print a diagnostic line on stderr with --verbose."""
    if state.verbose:
        err.print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """Print a warning on stderr (even with --quiet)."""
    # paths and labels are text, not markup; one line however long, as an error is (grep, logs)
    err.print(f"[yellow]warning:[/yellow] {_escape(message)}", markup=True, soft_wrap=True)


def error(message: str) -> None:
    """Print one red error line on stderr."""
    err.print(f"[bold red]error:[/bold red] [red]{_escape(message)}[/red]", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def result(renderable: Any = "") -> None:
    """Print a result (table or line) on stdout."""
    out.print(renderable)


def interactive() -> bool:
    """Return True when stderr is a terminal (live displays make sense) and not --quiet."""
    return err.is_terminal and not state.quiet and not os.environ.get("MICMON_NO_LIVE")


def progress(*, seconds: bool = False) -> Progress:
    """Return a Rich progress bar on stderr (hidden with --quiet or off a terminal)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if seconds:
        columns.append(TextColumn("{task.fields[audio]}"))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err, disable=not interactive(), transient=False)


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[str] = ()
) -> Table:
    """Return a Rich table with right-aligned `numeric` columns."""
    from rich.table import Table

    tbl = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        tbl.add_column(name, justify="right" if name in numeric else "left", overflow="fold")
    for row in rows:
        tbl.add_row(*(str(cell) for cell in row))
    return tbl


def fmt_db(value: float) -> str:
    """Return a dBFS level for display ("-inf" for silence)."""
    return "-inf" if not math.isfinite(value) else f"{value:.1f}"


def fmt_seconds(seconds: float) -> str:
    """Return a duration as "1h02m03s", "2m05s" or "4.2s"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"
