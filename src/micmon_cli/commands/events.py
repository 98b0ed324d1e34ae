"""`micmon events`: list or export the event history that `micmon monitor` records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import Force, resolve

if TYPE_CHECKING:
    from micmon.history import EventStore, StoredEvent
    from micmon_cli.config import ResolvedConfig

BYTES_PER_MB = 1_000_000


def clip_folder(cfg: ResolvedConfig) -> Path:
    """Return the folder of the first clip action (relative to the config file), else the default."""
    from micmon._io import expand_path
    from micmon_cli.config import ClipActionConfig

    base = cfg.file.parent if cfg.file is not None else Path.cwd()
    for spec in cfg.config.monitor.actions:
        if isinstance(spec, ClipActionConfig):
            return spec.folder if spec.folder.is_absolute() else base / spec.folder
    return expand_path(ClipActionConfig.model_fields["folder"].default)


def open_history(cfg: ResolvedConfig, *, create: bool) -> EventStore:
    """Open the history at history.folder (default: next to the clips) with its retention."""
    from micmon.history import HISTORY_FILE, EventStore

    h = cfg.config.history
    clips = clip_folder(cfg)
    folder = h.folder or clips
    return EventStore(folder / HISTORY_FILE, clip_folder=clips, max_age_days=h.max_age_days,
                      max_clip_bytes=int(h.max_clip_mb * BYTES_PER_MB), create=create)


def _duration(row: StoredEvent) -> str:
    if row.interrupted:
        return "interrupted"
    return "going on" if row.duration is None else f"{row.duration:.1f} s"


def events(
    since: Annotated[str | None, typer.Option(
        "--since", "-s", help="Only events that started after this: an age (30m, 12h, 1d, 2w) "
        "or a date/time (2026-05-06, 2026-05-06T07:30).", show_default=False)] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Only events that started before this (same forms as --since).",
        show_default=False)] = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="Only this label (repeat for several).", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", help="At most this many events, the newest (default: 100; all with "
        "--export).", show_default=False, min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, one per event.")
                       ] = False,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Write the events (oldest first) to this CSV file instead.",
        dir_okay=False, show_default=False)] = None,
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
    with open_history(cfg, create=False) as store:
        if export is not None:
            rows = store.query(since=start, until=end, label=label or None,
                               limit=limit or MAX_LIMIT, newest_first=False)
            path = write_csv(rows, export, force=force)
            console.info(f"wrote {len(rows)} events to {path}")
            return
        rows = store.query(since=start, until=end, label=label or None,
                           limit=limit or DEFAULT_LIMIT)
    if as_json:
        for row in rows:
            console.out.print(json.dumps(row.to_dict()), markup=False, soft_wrap=True)
        return
    if not rows:
        console.info("no events")
        return
    console.result(console.table(None, ["start", "label", "duration", "peak", "mean", "clip"], [
        (row.start_time[:19].replace("T", " "), row.label,
         _duration(row), f"{row.peak:.2f}",
         f"{row.mean:.2f}", Path(row.clip).name if row.clip else "-") for row in rows]))
