"""`micmon events`: list or export the event history that `micmon monitor` records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import Force, resolve

if TYPE_CHECKING:
    from micmon.history import StoredEvent


def _duration(row: StoredEvent) -> str:
    if row.interrupted:
        return "interrupted"
    return "going on" if row.duration is None else f"{row.duration:.1f} s"


def events(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            "-s",
            help="Only events that started after this: an age (30m, 12h, 1d, 2w) "
            "or a date/time (2026-05-06, 2026-05-06T07:30).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only events that started before this (same forms as --since).",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Only this label (repeat for several).", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            help="At most this many events, the newest (default: 100; all with --export).",
            show_default=False,
            min=1,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, one per event.")] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Write the events (oldest first) to this CSV file instead.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    force: Force = False,
) -> None:
    """List the events `micmon monitor` recorded (history.folder, next to the clips by default),
    newest first, or export them as CSV.

    Example: micmon events --since 1d --label cry
    """
    import json

    from micmon.history import DEFAULT_LIMIT, MAX_LIMIT, parse_when, write_csv

    cfg = resolve()
    start, end = parse_when(since, name="--since"), parse_when(until, name="--until")
    with cfg.history_store(create=False) as store:
        if export is not None:
            rows = store.query(
                since=start, until=end, label=label or None, limit=limit or MAX_LIMIT, newest_first=False
            )
            path = write_csv(rows, export, force=force)
            console.info(f"wrote {len(rows)} events to {path}")
            return
        rows = store.query(since=start, until=end, label=label or None, limit=limit or DEFAULT_LIMIT)
    if as_json:
        for row in rows:
            console.out.print(json.dumps(row.to_dict()), markup=False, soft_wrap=True)
        return
    if not rows:
        console.info("no events")
        return
    console.result(
        console.table(
            None,
            ["start", "label", "duration", "peak", "mean", "clip"],
            [
                (
                    row.start_time[:19].replace("T", " "),
                    row.label,
                    _duration(row),
                    f"{row.peak:.2f}",
                    f"{row.mean:.2f}",
                    Path(row.clip).name if row.clip else "-",
                )
                for row in rows
            ],
        )
    )
