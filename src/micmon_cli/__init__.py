"""The `micmon` command line: thin Typer + Rich adapters over the micmon library."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Resolved on demand: importlib.metadata costs ~80 ms that `micmon --help` should not pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("micmon")
        except PackageNotFoundError:  # pragma: no cover - source tree without install
            return "0+unknown"
    raise AttributeError(name)
