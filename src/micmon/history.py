"""The event history: every event `micmon monitor` raises, in one SQLite file, with retention.

One row per detected sound: written when it starts (``end`` empty while it goes on) and
completed when it ends (end, peak and mean confidence, clip path and size). The file uses WAL, so
the web page and ``micmon events`` read while the monitor writes. Retention removes rows older
than ``max_age_days`` and, while the clips of the remaining rows add up to more than
``max_clip_bytes``, the oldest rows together with their clip files.

Example::

    store = EventStore("~/micmon-clips/events.sqlite3", clip_folder="~/micmon-clips")
    for event in store.query(since=parse_when("1d"), label="cry"):
        print(event.start_time, event.label, event.duration)
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from micmon._io import atomic_path, expand_path
from micmon.actions import Action, ClipAudio
from micmon.detect import Event
from micmon.errors import MicmonError, ParameterError

#: File name of the history inside its folder.
HISTORY_FILE = "events.sqlite3"
#: Rows `query` returns when no limit is given, and the most it ever returns.
DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
#: Seconds a writer waits for another connection's lock before failing.
BUSY_TIMEOUT = 10.0
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL,
    confidence REAL NOT NULL,
    peak REAL NOT NULL,
    mean REAL NOT NULL,
    windows INTEGER NOT NULL,
    clip TEXT,
    clip_bytes INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_start ON events (start);
CREATE INDEX IF NOT EXISTS events_label_start ON events (label, start);
"""
_COLUMNS = (
    "id",
    "key",
    "label",
    "start",
    "end",
    "confidence",
    "peak",
    "mean",
    "windows",
    "clip",
    "clip_bytes",
    "model",
    "interrupted",
)
#: Columns of the CSV export, in order.
CSV_COLUMNS = (
    "id",
    "label",
    "start",
    "end",
    "duration",
    "confidence",
    "peak",
    "mean",
    "windows",
    "clip",
    "model",
    "interrupted",
)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class HistoryError(MicmonError):
    """The event history file cannot be opened, read or written."""


def event_key(event: Event) -> str:
    """Return the stable key of the sound `event` belongs to (its label and start, in ms)."""
    return f"{event.label}-{int(round(_epoch(event, event.start) * 1000))}"


def _epoch(event: Event, seconds: float) -> float:
    return event.origin.timestamp() + seconds


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).astimezone().isoformat(timespec="milliseconds")


def parse_when(
    text: str | float | datetime | date | None, *, name: str = "since", now: float | None = None
) -> float | None:
    """Return Unix seconds for an age ("1d", "12h", "30m", "90s", "2w"), an ISO date/time or a number.

    An age counts back from `now` (default: the current time); a date means its local midnight;
    a date-time without a time zone is local time. None stays None.
    """
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return (text if text.tzinfo else text.astimezone()).timestamp()
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day).astimezone().timestamp()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise ParameterError(f"{name}: expected a finite time, got {text!r}")
        return float(text)
    value = str(text).strip()
    match = _AGE.match(value)
    if match:
        now = time.time() if now is None else now
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            f"{name}: expected an age such as 1d, 12h or 30m, or a date such as "
            f"2026-05-06 or 2026-05-06T07:30, got {text!r}"
        ) from None
    return (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()


@dataclass(frozen=True)
class StoredEvent:
    """One sound in the history; times are Unix seconds (``end`` None while it goes on).

    ``interrupted`` marks a sound whose end was never seen (micmon was killed while it went on);
    its ``end`` is then its start.
    """

    id: int
    key: str
    label: str
    start: float
    end: float | None
    confidence: float
    peak: float
    mean: float
    windows: int
    clip: str | None
    clip_bytes: int
    model: str | None
    interrupted: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while it goes on)."""
        return None if self.end is None else self.end - self.start

    @property
    def start_time(self) -> str:
        """Start as local ISO 8601 with time zone."""
        return _iso(self.start) or ""

    @property
    def end_time(self) -> str | None:
        """End as local ISO 8601 with time zone (None while it goes on)."""
        return _iso(self.end)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-ready dict (times as ISO 8601)."""
        duration = self.duration
        return {
            "id": self.id,
            "key": self.key,
            "label": self.label,
            "start": self.start_time,
            "end": self.end_time,
            "start_unix": round(self.start, 3),
            "duration": None if duration is None else round(duration, 3),
            "confidence": round(self.confidence, 4),
            "peak": round(self.peak, 4),
            "mean": round(self.mean, 4),
            "windows": self.windows,
            "clip": self.clip,
            "model": self.model,
            "interrupted": bool(self.interrupted),
        }


class EventStore:
    """The SQLite event history (WAL; one connection per thread, so it is thread-safe).

    Parameters
    ----------
    path : path
        The SQLite file; created (with its folder) unless ``create`` is False.
    clip_folder : path, optional
        Where clips live; retention deletes clip files only inside it.
    max_age_days : float >= 0
        Rows older than this are removed by `prune` (0: kept forever).
    max_clip_bytes : int >= 0
        Most bytes of clips to keep; the oldest rows and their clips go first (0: no limit).
    create : bool
        False to require an existing file (readers such as ``micmon events``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clip_folder: str | os.PathLike[str] | None = None,
        max_age_days: float = 0.0,
        max_clip_bytes: int = 0,
        create: bool = True,
    ) -> None:
        if not isinstance(max_age_days, (int, float)) or not max_age_days >= 0:
            raise ParameterError(
                f"max_age_days: must be a number of days >= 0 (0: keep all), got {max_age_days!r}"
            )
        if not isinstance(max_clip_bytes, int) or max_clip_bytes < 0:
            raise ParameterError(
                f"max_clip_bytes: must be a whole number of bytes >= 0 (0: no limit), got {max_clip_bytes!r}"
            )
        self.path = expand_path(path)
        self.clip_folder = None if clip_folder is None else expand_path(clip_folder)
        self.max_age_days = float(max_age_days)
        self.max_clip_bytes = max_clip_bytes
        if not create and not self.path.is_file():
            raise HistoryError(
                f"{self.path}: no event history here yet; `micmon monitor` writes "
                "it (see history.folder in the config)"
            )
        self._local = threading.local()
        #: Bumped by every write of this object (a web page polls it to know when to reload).
        self.version = 0
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(
                    f"{self.path.parent}: cannot create the history folder ({exc.strerror})"
                ) from None
        with self._errors():
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path}: written by a newer micmon (schema {version}); upgrade micmon"
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=True
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn sqlite and file errors into one HistoryError line naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            hint = (
                "; move it away and micmon starts a new one"
                if "not a database" in text or "malformed" in text
                else ""
            )
            raise HistoryError(f"{self.path}: {text}{hint}") from None
        except OSError as exc:
            raise HistoryError(f"{self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------------
    def record(self, event: Event, *, model: str | None = None) -> int:
        """Write a start (a new row) or an end (completing its row); return the row id."""
        key = event_key(event)
        start = _epoch(event, event.start)
        end = None if event.kind == "start" or event.end is None else _epoch(event, event.end)
        clip_bytes = 0
        clip = os.path.abspath(event.clip) if event.clip else None  # readable from any folder
        if clip:
            try:
                clip_bytes = os.path.getsize(clip)
            except OSError:
                clip_bytes = 0
        with self._errors():
            conn = self._conn()
            conn.execute(
                "INSERT INTO events (key, label, start, end, confidence, peak, mean, windows, clip,"
                " clip_bytes, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET end = excluded.end, peak = excluded.peak,"
                " mean = excluded.mean, windows = excluded.windows,"
                " clip = coalesce(excluded.clip, clip), clip_bytes = excluded.clip_bytes"
                " WHERE excluded.end IS NOT NULL",
                (
                    key,
                    event.label,
                    start,
                    end,
                    float(event.confidence),
                    float(event.peak),
                    float(event.mean),
                    int(event.windows),
                    clip,
                    clip_bytes,
                    model,
                ),
            )
            row = conn.execute("SELECT id FROM events WHERE key = ?", (key,)).fetchone()
        self.version += 1
        return int(row[0])

    def end_unfinished(self) -> int:
        """Mark sounds left without an end by an earlier run as interrupted; return how many."""
        with self._errors():
            count = (
                self._conn()
                .execute("UPDATE events SET end = start, interrupted = 1 WHERE end IS NULL")
                .rowcount
            )
        if count:
            self.version += 1
        return int(count)

    def prune(self, *, now: float | None = None) -> int:
        """Apply retention (age, then total clip size); return how many rows were removed."""
        now = time.time() if now is None else now
        removed: list[tuple[int, str | None]] = []
        with self._errors():
            conn = self._conn()
            if self.max_age_days > 0:
                cutoff = now - self.max_age_days * 86400
                removed += conn.execute(
                    "SELECT id, clip FROM events WHERE start < ? AND end IS NOT NULL", (cutoff,)
                ).fetchall()
            if self.max_clip_bytes > 0:
                gone = {row[0] for row in removed}
                kept = [
                    row
                    for row in conn.execute(
                        "SELECT id, clip, clip_bytes FROM events WHERE clip_bytes > 0 AND "
                        "end IS NOT NULL ORDER BY start"
                    )
                    if row[0] not in gone
                ]
                total = sum(row[2] for row in kept)
                for row_id, clip, size in kept:  # oldest first
                    if total <= self.max_clip_bytes:
                        break
                    removed.append((row_id, clip))
                    total -= size
            if not removed:
                return 0
            for _, clip in removed:
                self._delete_clip(clip)
            conn.executemany("DELETE FROM events WHERE id = ?", [(r[0],) for r in removed])
        self.version += 1
        return len(removed)

    def _delete_clip(self, clip: str | None) -> None:
        if not clip or self.clip_folder is None:
            return
        path = Path(clip)
        try:
            if path.resolve().is_relative_to(self.clip_folder.resolve()) and path.is_file():
                path.unlink()
        except OSError:
            pass  # already gone or not ours to delete: the row goes anyway

    # -- reading ----------------------------------------------------------------------------------
    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        label: str | Sequence[str] | None = None,
        limit: int | None = DEFAULT_LIMIT,
        newest_first: bool = True,
    ) -> list[StoredEvent]:
        """Return events that started in [since, until) (Unix seconds), of `label`, newest first."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT
        ):
            raise ParameterError(f"limit: must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
        where: list[str] = []
        args: list[float | str] = []
        if since is not None:
            where.append("start >= ?")
            args.append(float(since))
        if until is not None:
            where.append("start < ?")
            args.append(float(until))
        if label:
            labels = [label] if isinstance(label, str) else list(label)
            where.append(f"label IN ({','.join('?' * len(labels))})")
            args.extend(labels)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY start {'DESC' if newest_first else 'ASC'}, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._errors():
            rows = self._conn().execute(sql, args).fetchall()
        return [StoredEvent(*row) for row in rows]

    def get(self, key: str) -> StoredEvent | None:
        """Return the event with this key (see `event_key`), or None."""
        with self._errors():
            row = (
                self._conn()
                .execute(f"SELECT {', '.join(_COLUMNS)} FROM events WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else StoredEvent(*row)

    def labels(self) -> list[str]:
        """Return every label in the history, sorted."""
        with self._errors():
            rows = self._conn().execute("SELECT DISTINCT label FROM events ORDER BY label")
            return [row[0] for row in rows]

    def count(self) -> int:
        """Return the number of rows."""
        with self._errors():
            return int(self._conn().execute("SELECT count(*) FROM events").fetchone()[0])


def write_csv(events: Sequence[StoredEvent], path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write `events` as CSV (columns `CSV_COLUMNS`) atomically; refuse to overwrite without force."""
    target = expand_path(path)
    if target.is_dir():
        raise ParameterError(f"{target}: is a folder; give a file name such as events.csv")
    if target.exists() and not force:
        raise ParameterError(f"{target}: already exists; use --force to overwrite it")
    try:
        with atomic_path(target, suffix=".csv") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(CSV_COLUMNS)
                for event in events:
                    data = event.to_dict()
                    writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])
    except OSError as exc:
        raise HistoryError(f"{target}: cannot write it ({exc.strerror or exc})") from None
    return target


class HistoryAction(Action):
    """Write every event into an `EventStore` (after the clip action, so the clip path is in it)."""

    name = "history"

    def __init__(self, store: EventStore, *, model: str | None = None) -> None:
        self.store = store
        self.model = model
        self.name = f"history {store.path}"

    def open(self) -> None:
        """Close what an earlier run left open, and apply retention once at start."""
        self.store.end_unfinished()
        self.store.prune()

    def handle(self, event: Event, audio: ClipAudio | None = None) -> Event:
        """Record the event; after an end, apply retention."""
        self.store.record(event, model=self.model)
        if event.kind == "end":
            self.store.prune()
        return event

    def close(self) -> None:
        """Close the connection of the action's thread."""
        self.store.close()
