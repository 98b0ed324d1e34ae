"""AudioFile: a recording (and its labels) as a stream of labelled windows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

from micmon._io import expand_path
from micmon.audio.directory import AudioDirectory
from micmon.audio.source import AudioSource, window_length
from micmon.errors import AudioError, ParameterError
from micmon.labels import Labels, parse_time


class AudioFile(AudioSource):
    """Windows of an audio file (any format ffmpeg reads), each labelled from labels.json if given.

    ``window_seconds`` is the window length; ``sample_duration``, the original README's name for
    it, is accepted as an alias. A window takes the label covering most of it; with
    ``background_labels``, a shorter sound held mostly inside a window names it instead
    (`Labels.label_for`).
    """

    def __init__(
        self,
        audio_file: str | os.PathLike[str] | AudioDirectory,
        labels_file: str | os.PathLike[str] | None = None,
        start: str | float = 0,
        duration: str | float | None = None,
        window_seconds: float = 2,
        sample_rate: int = 44100,
        channels: int = 1,
        *,
        hop: float | None = None,
        realtime: bool = False,
        ffmpeg_bin: str = "ffmpeg",
        sample_duration: float | None = None,
        background_labels: Sequence[str] | None = None,
    ) -> None:
        if isinstance(audio_file, AudioDirectory):
            directory = audio_file
            path = directory.audio_file
            if labels_file is None:
                labels_file = directory.labels_file
        else:
            path = str(expand_path(audio_file))
        if not os.path.isfile(path):
            raise AudioError(f"{path}: no such audio file")
        if not os.access(path, os.R_OK):
            raise AudioError(f"{path}: not readable (check its permissions)")
        self.path = path
        self.start = parse_time(start, name="start")
        self.duration = None if duration is None else parse_time(duration, name="duration")
        if self.duration is not None and self.duration <= 0:
            raise ParameterError(
                f"duration: must be > 0, got {duration!r}", parameter="duration", value=duration
            )
        self.labels: Labels | None = Labels.load(labels_file) if labels_file is not None else None
        self.labels_file = None if labels_file is None else str(expand_path(labels_file))
        args = ["-re"] if realtime else []
        if self.start:
            args += ["-ss", f"{self.start:.6f}"]
        if self.duration is not None:
            args += ["-t", f"{self.duration:.6f}"]
        args += ["-i", path]
        super().__init__(
            args,
            window_seconds=window_length(window_seconds, sample_duration),
            sample_rate=sample_rate,
            channels=channels,
            hop=hop,
            ffmpeg_bin=ffmpeg_bin,
            live=False,
            name=path,
            start_offset=self.start,
            labeller=None
            if self.labels is None
            else partial(self.labels.label_for, background=background_labels),
        )
