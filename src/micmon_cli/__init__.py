"""The `micmon` command line: thin Typer + Rich adapters over the micmon library."""

from micmon import __version__

__all__ = ["__version__"]
