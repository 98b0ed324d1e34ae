"""Small file helpers shared by the library: atomic writes, temporary names, path checks.

Every temporary file or folder micmon makes sits beside its target under a hidden name that
carries the writer's process id, host and `TEMP_MARKER` (``.data.npz.4711@pi.k2j1.micmon-tmp.npz``):
scans skip hidden names, and the next writer into the same folder removes those whose process is
gone (a killed `datagen` or `train`). Temporary files of another host (a shared network folder)
are only removed once they are a day old: their process cannot be checked from here. Outputs
get the permissions the umask gives, as a plain ``open()`` would, not the 0600/0700 of `tempfile`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from micmon.errors import EncodingError, OutputError

log = logging.getLogger(__name__)

#: Part of the name of every temporary file or folder micmon creates.
TEMP_MARKER = ".micmon-tmp"
#: Age after which a temporary file of another host is taken as abandoned.
FOREIGN_TEMP_SECONDS = 24 * 3600
_HOST = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:32] or "host"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def expand_path(path: str | os.PathLike[str]) -> Path:
    """Return `path` with `~` and environment variables expanded."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file (a leading byte order mark is fine); raise EncodingError if not UTF-8.

    OSErrors (missing, a folder, no permission) are raised as they are.
    """
    data = Path(path).read_bytes()
    try:
        # utf-8-sig: Windows editors start the file with a byte order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8",
            path=os.fspath(path),
        ) from None


def is_hidden(path: str | os.PathLike[str]) -> bool:
    """Return True for a hidden name (temporary files, editor backups): scans skip these."""
    return os.path.basename(os.fspath(path)).startswith(".")


def is_temp(path: str | os.PathLike[str]) -> bool:
    """Return True when `path` is named like one of micmon's temporary files or folders."""
    name = os.path.basename(os.fspath(path))
    return name.startswith(".") and TEMP_MARKER in name


def temp_sibling(target: str | os.PathLike[str], *, suffix: str = "") -> Path:
    """Return a fresh temporary name beside `target` (not created)."""
    target = Path(target)
    token = os.urandom(4).hex()  # (secrets would import hashlib: 30 ms on every `micmon --help`)
    return target.with_name(f".{target.name}.{os.getpid()}@{_HOST}.{token}{TEMP_MARKER}{suffix}")


def _owner(name: str) -> tuple[int, str] | None:
    """Return (pid, host) from a temporary name, or None if it is not one of ours."""
    head = name.split(TEMP_MARKER, 1)[0]
    parts = head.rsplit(".", 2)
    if len(parts) < 3:
        return None
    pid, _, host = parts[1].partition("@")
    return (int(pid), host) if pid.isdigit() and host else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove micmon temporary files/folders in `folder` whose writing process is gone; return them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp(entry.name):
            continue
        owner = _owner(entry.name)
        if owner is None:
            continue
        pid, host = owner
        if host == _HOST:
            if _alive(pid):
                continue
        else:
            try:
                age = time.time() - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age < FOREIGN_TEMP_SECONDS:
                continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError as exc:  # not ours to remove after all, or already gone
            log.debug("cannot remove stale %s: %s", entry.path, exc)
            continue
        log.info("removed %s, left behind by an interrupted run", entry.path)
        removed.append(Path(entry.path))
    return removed


def current_umask() -> int:
    """Return the process umask without changing it (Linux), else by setting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give `path` the mode a plain open()/mkdir() would have given it (0666/0777 minus umask)."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~current_umask())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target` that replaces `target` only if the block succeeds.

    The file has the umask's permissions; stale temporary files of killed runs in the same
    folder are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    tmp_path = temp_sibling(target, suffix=suffix or ".tmp")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp_path
        apply_umask(tmp_path)
        os.replace(tmp_path, target)
    except OSError as exc:
        if exc.filename is None:  # e.g. a full disk inside numpy or zipfile: name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `target` through a temporary file and a rename."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def removed_if_failed(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield `folder`; if the block fails, remove the folders it newly created that are still empty.

    A failed `record` must not leave an empty sample folder that blocks the retry.
    """
    folder = Path(folder)
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        yield folder
    except BaseException:
        for path in missing:  # deepest first
            try:
                path.rmdir()
            except OSError:  # not empty (something was saved) or already gone
                break
        raise


def make_staging_dir(target: str | os.PathLike[str]) -> Path:
    """Create and return a hidden temporary folder beside `target`, for `replace_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    staging = temp_sibling(target)
    staging.mkdir(mode=0o777)
    return staging


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def replace_dir(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put folder `staging` in place of folder `target` as a whole; the old folder is removed.

    Readers of `target` see the old folder or the new one, never a mix: on Linux the two are
    exchanged in one rename; elsewhere the old one is renamed away just before the new one
    takes its name. `staging` gets the umask's permissions.
    """
    staging, target = Path(staging), Path(target)
    apply_umask(staging)
    if not target.exists():
        os.replace(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old folder
        return
    old = temp_sibling(target)
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def link_or_copy(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Hard-link `source` to `dest` (copy when linking is impossible); for carrying files over."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def check_writable_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Create folder `path` if needed and prove a file can be written in it; raise OutputError if not.

    Call it before long work (training, generating datasets) so a bad output path fails in a
    second, not after the last epoch.
    """
    folder = expand_path(path)
    probe_parent = folder
    while not probe_parent.exists() and probe_parent != probe_parent.parent:
        probe_parent = probe_parent.parent
    if probe_parent.exists() and not probe_parent.is_dir():
        raise OutputError(
            f"{probe_parent}: is a file, not a folder; choose another {what} or move the file away",
            path=str(probe_parent),
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(folder / "write-check")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"{describe_os_error(exc, default_path=str(folder))} ({what})", path=str(folder)
        ) from None
    return folder


#: What to do about an OSError, by errno.
_FIXES: dict[int, str] = {
    errno.EACCES: "permission denied; check the file's owner and permissions or choose another path",
    errno.EPERM: "operation not permitted; check the file's owner and permissions or choose another path",
    errno.EROFS: "read-only file system; choose a path on a writable disk",
    errno.ENOSPC: "no space left on the device; free some space or choose another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another disk",
    errno.EISDIR: "is a folder, not a file; give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
    errno.ENOENT: "does not exist; check the path",
    errno.EEXIST: "already exists; remove it or choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.ENOTEMPTY: "the folder is not empty; empty it or choose another path",
    errno.EIO: "input/output error; check the disk or device",
    errno.ELOOP: "too many symbolic links; fix the link",
    errno.EXDEV: "cannot move across file systems; keep the output on one disk",
}


def describe_os_error(exc: OSError, *, default_path: str | None = None) -> str:
    """Return one line for an OSError: the path, what went wrong and how to fix it."""
    path = exc.filename if exc.filename is not None else default_path
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _FIXES.get(exc.errno or -1) or f"{reason[:1].lower()}{reason[1:]}"
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    if exc.filename2 is not None:
        where = f"{os.fsdecode(exc.filename)} -> {os.fsdecode(exc.filename2)}: "
    return f"{where}{fix}"
