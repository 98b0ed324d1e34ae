"""AudioDirectory: a sample folder holding one recording (audio.*) and its labels.json."""

from __future__ import annotations

import os
from pathlib import Path

from micmon._io import expand_path
from micmon.errors import AudioError, LabelsError
from micmon.labels import Labels

#: Audio file extensions recognised in a sample folder, in order of preference.
AUDIO_EXTENSIONS: tuple[str, ...] = ("mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aac")
LABELS_FILE = "labels.json"


def find_audio_file(folder: str | os.PathLike[str]) -> Path | None:
    """Return the `audio.<ext>` file in `folder`, or None."""
    folder = Path(folder)
    for ext in AUDIO_EXTENSIONS:
        candidate = folder / f"audio.{ext}"
        if candidate.is_file():
            return candidate
    return None


class AudioDirectory:
    """A sample folder: an audio file named `audio.<ext>` and, usually, a labels.json beside it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        audio_file: str | os.PathLike[str] | None = None,
        labels_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = str(expand_path(path))
        folder = Path(self.path)
        if not folder.is_dir():
            raise AudioError(f"{self.path}: no such sample folder")
        found = expand_path(audio_file) if audio_file is not None else find_audio_file(folder)
        if found is None:
            raise AudioError(
                f"{self.path}: no audio file; expected one named audio.{{{','.join(AUDIO_EXTENSIONS)}}}"
            )
        self.audio_file = str(found)
        labels = expand_path(labels_file) if labels_file is not None else folder / LABELS_FILE
        if labels.exists() and not labels.is_file():
            raise LabelsError(f"{labels}: is a folder, not a labels file; remove or rename it")
        self.labels_file: str | None = str(labels) if labels.is_file() else None
        self._labels: Labels | None = None

    def __repr__(self) -> str:
        return f"AudioDirectory({self.path!r})"

    def __fspath__(self) -> str:
        return self.path

    @property
    def name(self) -> str:
        """The folder's base name."""
        return os.path.basename(self.path.rstrip(os.sep))

    @property
    def labels(self) -> Labels | None:
        """The folder's labels (validated), or None without a labels.json."""
        if self._labels is None and self.labels_file is not None:
            self._labels = Labels.load(self.labels_file)
        return self._labels

    @classmethod
    def scan(cls, path: str | os.PathLike[str], *, require_labels: bool = True) -> list[AudioDirectory]:
        """Return the sample folders at or below `path`, sorted by path."""
        root = expand_path(path)
        if not root.is_dir():
            raise AudioError(f"{root}: no such folder")
        found = []
        seen: set[str] = set()
        # Folders reached through a symlink count like any other; each real folder once.
        for folder, dirs, _files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            here = Path(folder)
            if find_audio_file(here) is None:
                continue
            if require_labels and not (here / LABELS_FILE).exists():
                continue
            found.append(cls(here))
        return sorted(found, key=lambda d: d.path)


def audio_input(path: str | os.PathLike[str]) -> str:
    """Return the audio file `path` designates: the file itself, or a sample folder's audio.*."""
    target = expand_path(path)
    if target.is_dir():
        found = find_audio_file(target)
        if found is None:
            raise AudioError(f"{target}: a folder without an audio.* file; name an audio file")
        return str(found)
    if not target.exists():
        raise AudioError(f"{target}: no such audio file")
    return str(target)
