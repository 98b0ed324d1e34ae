"""Times ("SS", "MM:SS", "HH:MM:SS[.fff]") and labels.json files: parse, validate, save, look up.

Also what helps a user label: the loudness of each labelled segment, a labels draft from loudness
changes (`suggest_labels`), and a check of every sample folder (`check_folders`).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmon._io import expand_path, read_text, write_text_atomic
from micmon.errors import EncodingError, LabelsError, MicmonError, ParameterError

_TIME_RE = re.compile(r"^\s*(?:(?:(\d+):)?(\d+):)?(\d+)(?:\.(\d+))?\s*$")


def parse_time(value: str | float | int, *, name: str = "time") -> float:
    """Return seconds for `value`: seconds, or "SS", "MM:SS", "HH:MM:SS", each with optional ".fff"."""
    if isinstance(value, bool):
        raise ParameterError(
            f"{name}: expected seconds or 'MM:SS', got {value!r}", parameter=name, value=value
        )
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _TIME_RE.match(value)
        if not match:
            raise ParameterError(
                f"{name}: {value!r} is not a time; use seconds, 'MM:SS' or 'HH:MM:SS', "
                "optionally with '.fff'",
                parameter=name,
            )
        hours, minutes, secs, frac = match.groups()
        if hours is not None and int(minutes) >= 60:
            raise ParameterError(
                f"{name}: {value!r} has {minutes} minutes; minutes must be < 60", parameter=name
            )
        if (minutes is not None) and int(secs) >= 60:
            raise ParameterError(
                f"{name}: {value!r} has {secs} seconds; seconds must be < 60", parameter=name
            )
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(secs)
        if frac:
            seconds += int(frac) / 10 ** len(frac)
    else:
        raise ParameterError(
            f"{name}: expected seconds or 'MM:SS', got {type(value).__name__}",
            parameter=name,
            value=type(value).__name__,
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ParameterError(f"{name}: {value!r} must be a finite, non-negative time", parameter=name)
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

    def __init__(
        self,
        entries: Mapping[str | float, str] | Iterable[tuple[float, str]] = (),
        *,
        source: str | os.PathLike[str] | None = None,
    ) -> None:
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
                raise LabelsError(f"{where}key {key!r}: the label must be a non-empty string, got {label!r}")
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
            raise LabelsError(f"{path}: is a folder, not a labels file; remove or rename it") from None
        except OSError as exc:
            raise LabelsError(f"{path}: cannot read it ({exc.strerror})") from None
        try:
            data = json.loads(text, object_pairs_hook=_reject_repeated_keys)
        except _RepeatedKeyError as exc:
            raise LabelsError(f"{path}: key {exc.key!r} appears twice; keep one of them") from None
        except json.JSONDecodeError as exc:
            raise LabelsError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise LabelsError(
                f"{path}: expected a JSON object of 'MM:SS': 'label' pairs, got {type(data).__name__}"
            )
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

    def label_for(self, start: float, end: float, *, background: Iterable[str] | None = None) -> str | None:
        """Return the label covering most of [start, end), or None if most of it is unlabelled.

        With `background` (the "nothing happening" labels), a sound shorter than the window still
        names it: another label wins when the window holds at least half of that labelled
        stretch, or when it covers at least half the window (the one covering most, if several).
        """
        if end <= start:
            return self.label_at(start)
        cover: dict[str, float] = {}
        held: dict[str, float] = {}  # the largest share of one of the label's stretches held
        # Only the keys from the one in force at `start` to the last before `end` matter.
        first = max(bisect.bisect_right(self._starts, start + 1e-9) - 1, 0)
        last = bisect.bisect_left(self._starts, end)
        for i in range(first, last):
            lo = max(self._starts[i], start)
            hi = min(self._starts[i + 1], end) if i + 1 < len(self._starts) else end
            if hi > lo:
                label = self._labels[i]
                cover[label] = cover.get(label, 0.0) + (hi - lo)
                length = (self._starts[i + 1] - self._starts[i]) if i + 1 < len(self._starts) else math.inf
                held[label] = max(held.get(label, 0.0), (hi - lo) / length)
        if not cover:
            return None
        if background is not None:
            quiet = set(background)
            sounds = [
                label
                for label in cover
                if label not in quiet and (held[label] >= 0.5 or cover[label] >= 0.5 * (end - start))
            ]
            if sounds:
                return max(sounds, key=lambda label: cover[label])
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


# -- loudness, suggestions and checks -------------------------------------------------------------
#: Resolution of the loudness profile used by the timeline and --suggest.
LOUDNESS_STEP = 0.1
LOUDNESS_RATE = 16000
#: --suggest: loudness is smoothed over this many seconds, and no segment is shorter than this.
SMOOTH_SECONDS = 0.5
MIN_SEGMENT_SECONDS = 1.0
#: --suggest: a recording whose loud and quiet parts differ by less than this has no boundary.
MIN_CONTRAST_DB = 6.0
SILENCE_DB = -120.0


def loudness_profile(path: str | Path, *, ffmpeg_bin: str = "ffmpeg") -> np.ndarray:
    """Return the mean power (linear, full scale 1) of each LOUDNESS_STEP of the recording."""
    from micmon.audio import AudioFile

    powers = []
    with AudioFile(
        path, window_seconds=LOUDNESS_STEP, sample_rate=LOUDNESS_RATE, ffmpeg_bin=ffmpeg_bin
    ) as reader:
        for window in reader:
            x = window.samples.astype(np.float64)
            powers.append(float(np.mean(x * x)))
    return np.asarray(powers, dtype=np.float64)


def segment_levels(labels: Labels, duration: float, power: np.ndarray) -> list[tuple[LabelSegment, float]]:
    """Return each labelled segment (clipped to `duration`) with its mean loudness in dBFS."""
    out = []
    for seg in labels.segments(duration):
        end = min(seg.end if seg.end is not None else duration, duration)
        if end <= seg.start:
            continue
        lo, hi = int(seg.start / LOUDNESS_STEP), max(int(end / LOUDNESS_STEP), 0)
        part = power[lo:hi]
        mean = float(np.mean(part)) if len(part) else 0.0
        level = 10 * math.log10(mean) if mean > 0 else float("-inf")
        out.append((LabelSegment(seg.start, end, seg.label), level))
    return out


def suggest_labels(power: np.ndarray, *, background: str, foreground: str) -> dict[str, str]:
    """Return a labels.json draft: loud stretches labelled `foreground`, the rest `background`."""
    if len(power) == 0:
        return {"00:00": background}
    db = 10 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    k = max(1, int(round(SMOOTH_SECONDS / LOUDNESS_STEP)))
    padded = np.pad(db, (k // 2, k - 1 - k // 2), mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, k), axis=-1)
    quiet, loud = np.percentile(smooth, [10, 90])
    if loud - quiet < MIN_CONTRAST_DB:
        return {"00:00": background}
    is_loud = smooth > (quiet + loud) / 2
    # Runs shorter than the minimum are absorbed by their neighbours.
    min_len = max(1, int(round(MIN_SEGMENT_SECONDS / LOUDNESS_STEP)))
    changes = np.flatnonzero(np.diff(is_loud.astype(np.int8))) + 1
    bounds = [0, *changes.tolist(), len(is_loud)]
    runs = [(bounds[i], bounds[i + 1], bool(is_loud[bounds[i]])) for i in range(len(bounds) - 1)]
    merged: list[list[int | bool]] = []
    for start, end, state in runs:
        if merged and (end - start < min_len or merged[-1][2] == state):
            merged[-1][1] = end
        else:
            merged.append([start, end, state])
    return {
        format_time(int(start) * LOUDNESS_STEP): foreground if state else background
        for start, _end, state in merged
    }


@dataclass
class Problem:
    """One problem found by --check."""

    folder: str
    problem: str


def check_folders(
    root: str | os.PathLike[str], *, known: Iterable[str] = (), ffmpeg_bin: str = "ffmpeg"
) -> list[Problem]:
    """Validate every sample folder at or below `root`; return all problems found.

    `known` is the label list of the project (empty: any label goes).
    """
    from micmon.audio import probe_duration
    from micmon.audio.directory import LABELS_FILE, find_audio_file

    root = Path(root)
    known = set(known)
    problems: list[Problem] = []
    folders = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        audio = find_audio_file(here)
        has_labels = LABELS_FILE in files
        if audio is None and not has_labels:
            continue
        folders += 1
        name = str(here.relative_to(root)) if here != root else str(here)
        if audio is None:
            problems.append(Problem(name, "labels.json but no audio file (audio.mp3, .wav...)"))
            continue
        if not has_labels:
            problems.append(
                Problem(
                    name,
                    f"{audio.name} has no labels.json; add labels with `micmon label {name} 00:00=LABEL`",
                )
            )
            continue
        try:
            labels = Labels.load(here / LABELS_FILE)
            duration = probe_duration(audio, ffmpeg_bin=ffmpeg_bin)
        except MicmonError as exc:
            problems.append(Problem(name, str(exc).replace(f"{here}/", "")))
            continue
        for start in labels.past(duration):
            problems.append(
                Problem(
                    name,
                    f"label at {format_time(start)} is past the end of the "
                    f"recording ({format_time(duration)})",
                )
            )
        if known:
            for label in labels.names:
                if label not in known:
                    problems.append(
                        Problem(
                            name, f"label {label!r} is not in training.labels ({', '.join(sorted(known))})"
                        )
                    )
    if folders == 0:
        problems.append(
            Problem(str(root), "no sample folders (audio.mp3 + labels.json); record one with `micmon record`")
        )
    return problems
