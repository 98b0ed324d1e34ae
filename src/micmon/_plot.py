"""matplotlib, imported only when a plot is asked for, and PNG files written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from micmon._deps import missing_dependency
from micmon._io import atomic_path


def pyplot(*, headless: bool = False) -> Any:
    """Return matplotlib.pyplot (Agg backend if `headless`); MissingDependencyError without it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise (missing_dependency(exc, purpose="plotting") or exc) from None
    if headless:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike[str], *, dpi: float | str = "figure") -> Path:
    """Lay out `fig` and write it to `path` as PNG through a temporary file; return the path."""
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return out
