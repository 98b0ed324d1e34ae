"""Times ("SS", "MM:SS", "HH:MM:SS[.fff]") and labels.json files: parse, validate, save, look up."""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from micmon._io import expand_path, read_text, write_text_atomic
from micmon.errors import EncodingError, LabelsError, ParameterError

_TIME_RE = re.compile(r"^\s*(?:(?:(\d+):)?(\d+):)?(\d+)(?:\.(\d+))?\s*$")


def parse_time(value: str | float | int, *, name: str = "time") -> float:
    """Return seconds for `value`: seconds, or "SS", "MM:SS", "HH:MM:SS", each with optional ".fff"."""
    if isinstance(value, bool):
        raise ParameterError(f"{name}: expected seconds or 'MM:SS', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _TIME_RE.match(value)
        if not match:
            raise ParameterError(
                f"{name}: {value!r} is not a time; use seconds, 'MM:SS' or 'HH:MM:SS', "
                "optionally with '.fff'"
            )
        hours, minutes, secs, frac = match.groups()
        if hours is not None and int(minutes) >= 60:
            raise ParameterError(f"{name}: {value!r} has {minutes} minutes; minutes must be < 60")
        if (minutes is not None) and int(secs) >= 60:
            raise ParameterError(f"{name}: {value!r} has {secs} seconds; seconds must be < 60")
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(secs)
        if frac:
            seconds += int(frac) / 10 ** len(frac)
    else:
        raise ParameterError(f"{name}: expected seconds or 'MM:SS', got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ParameterError(f"{name}: {value!r} must be a finite, non-negative time")
    return seconds


def format_time(seconds: float, *, millis: bool = True) -> str:
    """Return `seconds` as "MM:SS.fff" (or "HH:MM:SS.fff" from one hour on)."""
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    if millis and ms:
        text += f".{ms:03d}"
    return text


@dataclass(frozen=True)
class LabelSegment:
    """A labelled stretch of a recording; `end` is None for the last one when the length is unknown."""

    start: float
    end: float | None
    label: str

    @property
    def duration(self) -> float | None:
        """Length in seconds, or None when the end is unknown."""
        return None if self.end is None else self.end - self.start


class Labels:
    """An ordered `start time -> label` mapping, as stored in labels.json."""

    def __init__(self, entries: Mapping[str | float, str] | Iterable[tuple[float, str]] = (),
                 *, source: str | os.PathLike[str] | None = None) -> None:
        where = f"{source}: " if source is not None else ""
        items = entries.items() if isinstance(entries, Mapping) else entries
        points: dict[float, str] = {}
        keys: dict[float, object] = {}
        for key, label in items:
            try:
                start = parse_time(key, name=f"key {key!r}")
            except ParameterError as exc:
                raise LabelsError(f"{where}{exc}") from None
            if not isinstance(label, str) or not label.strip():
                raise LabelsError(f"{where}key {key!r}: the label must be a non-empty string, "
                                  f"got {label!r}")
            start = round(start, 6)
            if start in points:
                raise LabelsError(f"{where}key {key!r}: the same time as key {keys[start]!r}")
            points[start] = label.strip()
            keys[start] = key
        self._starts = sorted(points)
        self._labels = [points[s] for s in self._starts]
        self.source = source

    # -- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Labels:
        """Read and validate a labels.json file."""
        path = expand_path(path)
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise LabelsError(f"{path}: no such labels file") from None
        except EncodingError as exc:
            raise LabelsError(str(exc)) from None
        except IsADirectoryError:
            raise LabelsError(f"{path}: is a folder, not a labels file; remove or rename it"
                              ) from None
        except OSError as exc:
            raise LabelsError(f"{path}: cannot read it ({exc.strerror})") from None
        try:
            data = json.loads(text, object_pairs_hook=_reject_repeated_keys)
        except _RepeatedKeyError as exc:
            raise LabelsError(f"{path}: key {exc.key!r} appears twice; keep one of them") from None
        except json.JSONDecodeError as exc:
            raise LabelsError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from None
        if not isinstance(data, dict):
            raise LabelsError(f"{path}: expected a JSON object of 'MM:SS': 'label' pairs, "
                              f"got {type(data).__name__}")
        if not data:
            raise LabelsError(f"{path}: no labels; add at least one 'MM:SS': 'label' pair")
        return cls(data, source=path)

    def to_dict(self) -> dict[str, str]:
        """Return the labels as a JSON-ready {"MM:SS[.fff]": label} mapping."""
        return {format_time(s): label for s, label in zip(self._starts, self._labels, strict=True)}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the labels to `path` atomically."""
        write_text_atomic(expand_path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    def merged(self, other: Labels | Mapping[str | float, str]) -> Labels:
        """Return these labels with `other`'s entries added (replacing any at the same time)."""
        other = other if isinstance(other, Labels) else Labels(other)
        points = dict(zip(self._starts, self._labels, strict=True))
        points.update(zip(other._starts, other._labels, strict=True))
        return Labels(sorted(points.items()), source=self.source)

    # -- lookup -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(zip(self._starts, self._labels, strict=True))

    @property
    def names(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted(set(self._labels))

    @property
    def starts(self) -> list[float]:
        """The start times in seconds, ascending."""
        return list(self._starts)

    def label_at(self, t: float) -> str | None:
        """Return the label in force at `t` seconds, or None before the first key."""
        i = bisect.bisect_right(self._starts, t + 1e-9) - 1
        return self._labels[i] if i >= 0 else None

    def label_for(self, start: float, end: float) -> str | None:
        """Return the label covering most of [start, end), or None if most of it is unlabelled."""
        if end <= start:
            return self.label_at(start)
        cover: dict[str, float] = {}
        # Only the keys from the one in force at `start` to the last before `end` matter.
        first = max(bisect.bisect_right(self._starts, start + 1e-9) - 1, 0)
        last = bisect.bisect_left(self._starts, end)
        for i in range(first, last):
            lo = max(self._starts[i], start)
            hi = min(self._starts[i + 1], end) if i + 1 < len(self._starts) else end
            if hi > lo:
                label = self._labels[i]
                cover[label] = cover.get(label, 0.0) + (hi - lo)
        if not cover:
            return None
        unlabelled = (end - start) - sum(cover.values())
        # Ties go to the earliest label in the window, so the rule is deterministic.
        best = max(cover.items(), key=lambda kv: kv[1])
        return best[0] if best[1] >= unlabelled else None

    def segments(self, duration: float | None = None) -> list[LabelSegment]:
        """Return the labelled stretches; with `duration`, clipped to it (labels past it left out).

        Labels at or after the end of the recording are listed by `past`, never returned as
        stretches of negative length.
        """
        out = []
        for i, (start, label) in enumerate(zip(self._starts, self._labels, strict=True)):
            end = self._starts[i + 1] if i + 1 < len(self._starts) else duration
            if duration is not None:
                if start >= duration:
                    break
                end = min(end if end is not None else duration, duration)
            out.append(LabelSegment(start, end, label))
        return out

    def past(self, duration: float) -> list[float]:
        """Return the start times at or after `duration` seconds (labels beyond the recording)."""
        return [s for s in self._starts if s >= duration]


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json object hook: plain json.loads keeps the last of two equal keys, silently."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKeyError(key)
        out[key] = value
    return out


def load_labels(path: str | os.PathLike[str]) -> Labels:
    """Read and validate a labels.json file."""
    return Labels.load(path)


def find_labels_file(folder: str | os.PathLike[str]) -> Path | None:
    """Return `folder`/labels.json if it exists; raise LabelsError if that name is not a file."""
    candidate = expand_path(folder) / "labels.json"
    if candidate.exists() and not candidate.is_file():
        raise LabelsError(f"{candidate}: is a folder, not a labels file; remove or rename it")
    return candidate if candidate.is_file() else None
