"""Optional dependencies: which pip extra provides each, and the one error that says how to add it.

`pip install micmon` brings everything detection needs; training needs the `train` extra
(TensorFlow, which brings Keras) and plots the `plot` extra (matplotlib).
"""

from __future__ import annotations

from typing import Any

from micmon.errors import MissingDependencyError

#: Top-level module -> (what it is called for the user, the extra of micmon that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "keras": ("TensorFlow (Keras)", "train"),
    "tensorflow": ("TensorFlow", "train"),
    "matplotlib": ("matplotlib", "plot"),
}


def install_command(extra: str) -> str:
    """Return the pip command that installs micmon with `extra`, e.g. pip install 'micmon[train]'."""
    return f"pip install 'micmon[{extra}]'"


def missing_dependency(exc: ImportError, *, purpose: str | None = None) -> MissingDependencyError | None:
    """Return the user-facing error for an ImportError of an optional dependency, else None."""
    if isinstance(exc, MissingDependencyError):
        return exc
    top = (exc.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    package, extra = EXTRAS[top]
    return MissingDependencyError(
        f"{purpose or 'this'} needs {package}, which is not installed: {install_command(extra)}",
        package=top,
        extra=extra,
    )


def require_keras(purpose: str = "training") -> Any:
    """Import and return Keras, or raise MissingDependencyError naming pip install 'micmon[train]'."""
    try:
        import keras
    except ImportError as exc:
        error = missing_dependency(exc, purpose=purpose) or MissingDependencyError(
            f"{purpose} needs TensorFlow (Keras), which cannot be imported ({exc}): "
            f"{install_command('train')}",
            package="keras",
            extra="train",
        )
        raise error from None
    return keras
