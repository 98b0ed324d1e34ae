"""Options bound to config keys, declared once: help, choices and default come from the schema.

A command declares ``epochs: Annotated[int | None, config_option("training.epochs", "--epochs")]``
and calls `resolve()`; that is the whole binding. The option's help text, its choices (checked
when parsing) and its effective default are read from the config schema (`micmon_cli.config`)
when the command runs or shows its help, so `micmon --help` never imports pydantic; `resolve()`
turns every option given on the command line into an override of its key.
"""

from __future__ import annotations

import inspect
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand
from typer.models import ArgumentInfo, OptionInfo

if TYPE_CHECKING:
    from micmon_cli.config import ResolvedConfig


@dataclass(frozen=True)
class Binding:
    """What ties a command-line parameter to a config key."""

    key: str
    help: str | None = None
    convert: Callable[[Any], Any] | None = None


_BINDING_ATTR = "micmon_binding"


def config_option(
    key: str, *decls: str, help: str | None = None, convert: Callable[[Any], Any] | None = None, **kwargs: Any
) -> Any:
    """Return a Typer option overriding config `key`; `help` replaces the schema's description."""
    info = typer.Option(*decls, show_default=False, **kwargs)
    setattr(info, _BINDING_ATTR, Binding(key, help, convert))
    return info


def config_argument(key: str, metavar: str, *, help: str | None = None, **kwargs: Any) -> Any:
    """Return an optional Typer argument overriding config `key`, shown as `metavar`."""
    info = typer.Argument(metavar=metavar, show_default=False, **kwargs)
    setattr(info, _BINDING_ATTR, Binding(key, help))
    return info


def bindings(callback: Callable[..., Any] | None) -> dict[str, Binding]:
    """Return the config bindings of a command function's parameters, by parameter name."""
    if callback is None:
        return {}
    cached = getattr(callback, "_micmon_bindings", None)
    if cached is not None:
        return typing.cast(dict[str, Binding], cached)
    hints = typing.get_type_hints(callback, include_extras=True)
    found: dict[str, Binding] = {}
    for name in inspect.signature(callback).parameters:
        for meta in getattr(hints.get(name), "__metadata__", ()):
            if isinstance(meta, (OptionInfo, ArgumentInfo)) and hasattr(meta, _BINDING_ATTR):
                found[name] = getattr(meta, _BINDING_ATTR)
    callback._micmon_bindings = found  # type: ignore[attr-defined]
    return found


def resolve() -> ResolvedConfig:
    """Load the config named by the global options, with the running command's options on top."""
    from micmon_cli.config import Flag, load_config
    from micmon_cli.console import state

    ctx = _invoked[-1]
    flags = []
    by_name = {p.name: p for p in ctx.command.params}
    for name, binding in bindings(ctx.command.callback).items():
        value = ctx.params.get(name)
        if value is None:
            continue
        param = by_name[name]
        choices = getattr(param, "micmon_choices", ())
        if choices and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", ctx=ctx, param=param)
        if binding.convert is not None:
            value = binding.convert(value)
        flags.append(Flag(binding.key, value, _display_name(param)))
    return load_config(state.config_path, flags)


#: Contexts of the MicmonCommands being invoked (innermost last), for `resolve()`.
_invoked: list[Any] = []


def _is_flag(param: Any) -> bool:
    return param.param_type_name == "option" and bool(getattr(param, "is_flag", False))


def hide_flag_metavars(params: Any) -> None:
    """Show no value placeholder (Typer's ``<bool>``) for flags: they take no value."""
    for param in params:
        if _is_flag(param):
            param.metavar = ""


def _display_name(param: Any) -> str:
    if param.param_type_name == "argument":
        return str(param.metavar or param.name or "").upper()
    longs = [o for o in param.opts if o.startswith("--")]
    return str((longs or param.opts)[0])


def split_list(value: str) -> list[str]:
    """Return the items of a comma-separated option value (blanks dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of each paragraph, so help text wraps at any width."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class MicmonCommand(TyperCommand):
    """A subcommand whose help wraps cleanly and whose config-bound options describe themselves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = unwrap(self.help)
        self._described = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Fill in the config-bound help and choices (help is shown while parsing), then parse."""
        self.describe()
        hide_flag_metavars(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        """Run the command with its context available to `resolve()`."""
        _invoked.append(ctx)
        try:
            return super().invoke(ctx)
        finally:
            _invoked.pop()

    def describe(self) -> None:
        """Set each config-bound parameter's help, choices and default from the schema (once)."""
        if self._described:
            return
        self._described = True
        from rich.markup import escape

        from micmon_cli.config import key_info

        found = bindings(self.callback)
        for param in self.params:
            binding = found.get(param.name or "")
            if binding is None:
                continue
            info = key_info(binding.key)
            text = binding.help or info.description
            default = "" if info.default in (None, "", [], {}) else f", default {info.default}"
            first = text[:1] if text.startswith("ffmpeg") else text[:1].upper()  # a name stays lowercase
            help_text = escape(f"{first}{text[1:]} (config: {binding.key}{default}).")
            if info.choices and not _is_flag(param):
                param.micmon_choices = info.choices  # type: ignore[attr-defined]  # checked in resolve()
                param.metavar = "|".join(info.choices)
            param.help = help_text  # type: ignore[attr-defined]


__all__ = [
    "Binding",
    "MicmonCommand",
    "bindings",
    "config_argument",
    "config_option",
    "hide_flag_metavars",
    "resolve",
    "split_list",
    "unwrap",
]
