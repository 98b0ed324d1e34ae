"""Small file helpers shared by the library: atomic writes and path expansion."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def expand_path(path: str | os.PathLike[str]) -> Path:
    """Return `path` with `~` and environment variables expanded."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target` that replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` through a temporary file and a rename."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")

