"""Batch runs over many inputs: a bad input is reported and the others go on; the run fails at the end.

Example::

    batch = Batch(on_error=print)
    for path in paths:
        with batch.item(path):
            score(path)              # a MicmonError or OSError is reported, the loop goes on
    batch.finish()                   # raises MicmonError naming the inputs that failed
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from micmon._io import describe_os_error
from micmon.errors import FFmpegNotFoundError, MicmonError, OutputError

#: Errors about the whole run (no ffmpeg, an unwritable output): they stop the batch at once.
_FATAL: tuple[type[Exception], ...] = (FFmpegNotFoundError, OutputError)
_FATAL_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)


class BatchError(MicmonError):
    """Some inputs of a batch failed (each was reported when it failed); `failed` names them."""

    def __init__(self, message: str, *, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


@dataclass
class Batch:
    """Collects the failures of a loop over inputs; `finish` raises BatchError if there were any."""

    what: str = "file"
    on_error: Callable[[str], None] | None = None
    #: How many inputs the batch has; with one, its error is raised as it is by `finish`.
    total: int | None = None
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    @contextlib.contextmanager
    def item(self, name: str | os.PathLike[str]) -> Iterator[None]:
        """Run the block for input `name`; a MicmonError or OSError is reported, not raised.

        Errors about the whole run (ffmpeg missing, output not writable, disk full) are raised.
        """
        label = os.fspath(name)
        try:
            yield
        except _FATAL:
            raise  # about the run, not this input: the other inputs would fail the same way
        except OSError as exc:
            if exc.errno in _FATAL_ERRNOS:
                raise
            self.errors.append(exc)
            self.fail(label, describe_os_error(exc))
        except MicmonError as exc:
            self.errors.append(exc)
            self.fail(label, str(exc))
        else:
            self.done.append(label)

    def fail(self, name: str | os.PathLike[str], message: str) -> None:
        """Record that input `name` failed with `message` (and report it)."""
        label = os.fspath(name)
        self.failed.append(label)
        if self.on_error is not None and self.total != 1:
            self.on_error(message if label in message else f"{label}: {message}")

    def finish(self) -> None:
        """Raise BatchError naming the failed inputs, if any."""
        if not self.failed:
            return
        if self.total == 1 and self.errors:
            raise self.errors[0]  # one input: its own error is the whole story
        total = self.total or len(set(self.failed) | set(self.done))
        names = ", ".join(self.failed[:3]) + (
            f" and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
        )
        raise BatchError(
            f"{len(self.failed)} of {total} {self.what}s failed ({names}); the messages above say why",
            failed=list(self.failed),
        )
