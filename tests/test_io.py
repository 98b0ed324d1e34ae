"""Outputs are complete or absent: temporary names, stale leftovers, umask, whole-folder model swaps."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from micmon._io import (
    TEMP_MARKER,
    atomic_path,
    check_writable_dir,
    describe_os_error,
    is_temp,
    remove_stale_temps,
    temp_sibling,
    write_text_atomic,
)
from micmon.errors import LabelsError, ModelError, OutputError


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _killed_writer(target: Path, payload: bytes) -> None:
    """Run a writer that dies (SIGKILL) inside atomic_path, as a killed `micmon datagen` does."""
    code = (
        "import os, signal, sys; from micmon._io import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.npz') as tmp:\n"
        "    tmp.write_bytes(bytes.fromhex(sys.argv[2]))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target), payload.hex()],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert proc.returncode == -9


def _npz(path: Path, labels: list[str]) -> None:
    with open(path, "wb") as fh:
        np.savez(
            fh,
            samples=np.zeros((2, 4), np.float32),
            classes=np.array([0, 1]),
            cutoff_frequencies=np.array([20.0, 8000.0]),
            labels=np.array(labels),
        )


def test_atomic_outputs_follow_the_umask(tmp_path: Path, umask: None) -> None:
    write_text_atomic(tmp_path / "labels.json", "{}")
    assert (tmp_path / "labels.json").stat().st_mode & 0o777 == 0o644
    os.umask(0o002)
    write_text_atomic(tmp_path / "other.json", "{}")
    assert (tmp_path / "other.json").stat().st_mode & 0o777 == 0o664


def test_killed_writer_leaves_a_temp_that_scans_skip_and_the_next_run_removes(tmp_path: Path) -> None:
    from micmon.dataset import Dataset

    data = tmp_path / "data"
    data.mkdir()
    _npz(data / "good.npz", ["negative", "positive"])
    complete = data / "extra.npz"
    _npz(complete, ["negative", "positive", "surprise"])
    _killed_writer(data / "killed.npz", complete.read_bytes())  # a complete file, never renamed
    complete.unlink()
    (leftover,) = [p for p in data.iterdir() if is_temp(p)]
    assert leftover.name.startswith(".killed.npz.") and TEMP_MARKER in leftover.name
    # Scans never read it: not trained on as an extra recording (no "surprise" label).
    (only,) = Dataset.scan(data)
    assert only.labels == ["negative", "positive"]
    _killed_writer(data / "empty.npz", b"")  # killed before writing: an empty file
    (leftover,) = [p for p in data.iterdir() if is_temp(p)]  # the first one was removed
    assert leftover.name.startswith(".empty.npz.")
    (only,) = Dataset.scan(data)  # no numpy error about an empty file
    # The next writer in that folder removes what a dead process left behind.
    write_text_atomic(data / "note.txt", "x")
    assert sorted(p.name for p in data.iterdir()) == ["good.npz", "note.txt"]


def test_temps_of_live_processes_and_foreign_hidden_files_are_kept(tmp_path: Path) -> None:
    mine = temp_sibling(tmp_path / "a.npz")
    mine.write_text("in progress")
    host = temp_sibling(tmp_path / "x").name.split("@")[1].split(".")[0]
    dead = tmp_path / f".b.npz.{_dead_pid()}@{host}.abcd{TEMP_MARKER}.npz"
    dead.write_text("left behind")
    # Another host's temp (a shared network folder): its process cannot be checked from here.
    foreign = tmp_path / f".c.npz.{_dead_pid()}@otherpi.abcd{TEMP_MARKER}.npz"
    foreign.write_text("being written elsewhere")
    abandoned = tmp_path / f".d.npz.{_dead_pid()}@otherpi.abcd{TEMP_MARKER}.npz"
    abandoned.write_text("written elsewhere two days ago")
    os.utime(abandoned, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    stale_dir = tmp_path / f".model.{_dead_pid()}@{host}.abcd{TEMP_MARKER}"
    stale_dir.mkdir()
    (stale_dir / "model.tflite").write_text("half")
    editor = tmp_path / ".labels.json.swp"
    editor.write_text("vim")
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(
        [dead.name, stale_dir.name, abandoned.name]
    )
    assert mine.exists() and editor.exists() and foreign.exists()


def test_model_folder_is_replaced_as_a_whole_with_umask_permissions(
    trained_model_dir: Path, tmp_path: Path, umask: None
) -> None:
    from micmon.model import Model

    model = Model.load(trained_model_dir)
    out = tmp_path / "models" / "sound"
    model.save(out)
    assert out.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        "model.keras": 0o644,
        "model.tflite": 0o644,
        "micmon.json": 0o644,
    }
    (out / "notes.txt").write_text("mine")
    before = out.stat().st_ino
    # A killed earlier save left its hidden staging folder: the next save removes it.
    host = temp_sibling(out).name.split("@")[1].split(".")[0]
    stale = tmp_path / "models" / f".sound.{_dead_pid()}@{host}.beef{TEMP_MARKER}"
    stale.mkdir()
    (stale / "model.tflite").write_bytes(b"half")
    with pytest.raises(ModelError, match="already holds a model.*--force"):
        model.save(out)
    model.save(out, overwrite=True)
    assert out.stat().st_ino != before  # a new folder took the old one's name in one step
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sound"]
    assert json.loads((out / "micmon.json").read_text())["labels"] == model.labels


def test_model_target_is_checked_before_training(tmp_path: Path) -> None:
    from micmon.training import check_destination  # what `micmon train` calls first

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=f"{blocker}: is a file, not a folder"):
        check_destination(blocker / "model")
    with pytest.raises(ModelError, match="exists and is not a folder"):
        check_destination(blocker)
    assert check_destination(tmp_path / "new" / "model") == tmp_path / "new" / "model"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder_is_reported_before_work(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputError, match="permission denied"):
        check_writable_dir(locked / "out")


def test_os_errors_read_as_one_line_with_the_path_and_the_fix() -> None:
    cases = {
        errno.ENOSPC: "no space left",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EISDIR: "is a folder",
    }
    for code, words in cases.items():
        line = describe_os_error(OSError(code, os.strerror(code), "/data/x.npz"))
        assert line.startswith("/data/x.npz: ") and words in line and "\n" not in line
    assert describe_os_error(OSError(errno.ENOSPC, "No space"), default_path="/d").startswith("/d: ")


def test_full_disk_inside_a_writer_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "d.npz") as _tmp:
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []


def test_labels_with_bom_are_read_and_other_encodings_named(tmp_path: Path) -> None:
    from micmon.labels import Labels

    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"00:00": "negative", "00:05": "positive"}')
    assert Labels.load(bom).to_dict() == {"00:00": "negative", "00:05": "positive"}
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"00:00": "négatif"}'.encode("latin-1"))
    with pytest.raises(LabelsError, match=f"{latin}: not UTF-8 text .*save it as UTF-8"):
        Labels.load(latin)
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(LabelsError, match="is a folder, not a labels file"):
        Labels.load(folder)
    shutil.rmtree(folder)
