"""Exceptions raised by micmon: one base class, caught once by the CLI."""

from __future__ import annotations

from typing import Any


class MicmonError(Exception):
    """Base class of every error micmon raises on purpose; its message is meant for the user."""


class ParameterError(MicmonError, ValueError):
    """A parameter has a value micmon cannot work with; `parameter` names it, `value` is what was given."""

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value


class FFmpegNotFoundError(MicmonError):
    """The ffmpeg (or ffplay) executable is not installed or not on PATH."""


class AudioError(MicmonError):
    """An audio file or device cannot be opened or decoded."""


class LabelsError(MicmonError):
    """A labels.json file is missing, malformed or inconsistent."""


class DatasetError(MicmonError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class ModelError(MicmonError):
    """A model folder is missing, malformed, or would be overwritten."""


class MissingDependencyError(MicmonError, ImportError):
    """An optional dependency is not installed; the message names the pip command that adds it."""

    def __init__(self, message: str, *, package: str, extra: str | None = None) -> None:
        super().__init__(message)
        self.package = package
        self.extra = extra


class EncodingError(MicmonError, ValueError):
    """A text file (labels.json, micmon.yaml) is not UTF-8; `path` names it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class OutputError(MicmonError):
    """An output file or folder cannot be written; `path` names it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
