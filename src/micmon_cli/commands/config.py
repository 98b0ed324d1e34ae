"""`micmon config`: show the effective configuration and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from micmon_cli import console
from micmon_cli.commands import Force, resolve


def _show(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value) if value else "[]" if isinstance(value, list) else "{}"
    return str(value)


def config(
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help="Write a documented config file with every key and its default to this "
            "path (e.g. micmon.yaml).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the effective values as JSON.")] = False,
    force: Force = False,
) -> None:
    """Show the effective configuration: every key, its value and where it came from
    (a file, a flag or the built-in default).

    Example: micmon --config ~/baby/micmon.yaml config
    """
    from micmon._io import write_text_atomic
    from micmon_cli.config import ConfigError, render_example

    if init is not None:
        if init.exists() and not force:
            raise ConfigError(f"{init}: already exists; use --force to overwrite it")
        write_text_atomic(init, render_example())
        console.info(f"wrote {init}; edit it, then check it with `micmon --config {init} config`")
        return
    resolved = resolve()
    if as_json:
        data = {
            key: {"value": value if not isinstance(value, Path) else str(value), "source": source}
            for key, value, source in resolved.items()
        }
        console.out.print_json(
            json.dumps({"file": str(resolved.file) if resolved.file else None, "settings": data})
        )
        return
    where = str(resolved.file) if resolved.file else "none found; built-in defaults"
    console.info(f"config file: {where}")
    file = str(resolved.file)
    console.result(
        console.table(
            None,
            ["key", "value", "source"],
            ((k, _show(v), "file" if s == file else s) for k, v, s in resolved.items()),
        )
    )
