"""The SQLite event history: starts and ends, queries, restarts, retention, CSV, bad input."""

from __future__ import annotations

import csv
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from micmon.detect import Event
from micmon.errors import ParameterError
from micmon.history import (
    CSV_COLUMNS,
    EventStore,
    HistoryAction,
    HistoryError,
    event_key,
    parse_when,
    write_csv,
)

NOW = datetime(2026, 5, 6, 12, 0, 0, tzinfo=timezone.utc)


def _pair(
    label: str, start: float, seconds: float = 4.0, *, origin: datetime = NOW, clip: str | None = None
) -> tuple[Event, Event]:
    begin = Event(
        kind="start",
        label=label,
        start=start,
        end=None,
        confidence=0.8,
        peak=0.8,
        mean=0.8,
        windows=2,
        origin=origin,
    )
    end = Event(
        kind="end",
        label=label,
        start=start,
        end=start + seconds,
        confidence=0.1,
        peak=0.97,
        mean=0.9,
        windows=9,
        origin=origin,
        clip=clip,
    )
    return begin, end


def _clip(folder: Path, name: str, size: int) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return str(path)


def test_start_then_end_make_one_row_that_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "h" / "events.sqlite3"
    store = EventStore(path)
    begin, end = _pair("cry", 10.0, clip=_clip(tmp_path, "cry.mp3", 300))
    row_id = store.record(begin, model="m1")
    (going,) = store.query()
    assert going.end is None and going.duration is None and going.key == event_key(begin)
    assert store.record(end, model="m1") == row_id
    store.close()
    reopened = EventStore(path, create=False)  # a new process would see the same
    (done,) = reopened.query()
    assert done.id == row_id and done.label == "cry" and done.model == "m1"
    assert done.start == pytest.approx(NOW.timestamp() + 10.0)
    assert done.duration == pytest.approx(4.0) and done.peak == pytest.approx(0.97)
    assert done.clip == str(tmp_path / "cry.mp3") and done.clip_bytes == 300
    data = done.to_dict()
    assert data["start"].startswith("2026-05-06") and data["duration"] == 4.0
    assert path.with_name("events.sqlite3-wal").exists()  # WAL journal


def test_query_filters_order_and_limit(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    for i, label in enumerate(["cry", "bark", "cry", "cry"]):
        for event in _pair(label, 100.0 * i):
            store.record(event)
    assert [e.label for e in store.query()] == ["cry", "cry", "bark", "cry"]  # newest first
    assert [e.start - NOW.timestamp() for e in store.query(label="cry", newest_first=False)] == [
        0.0,
        200.0,
        300.0,
    ]
    since = NOW.timestamp() + 150
    assert len(store.query(since=since)) == 2
    assert len(store.query(since=since, until=since + 100)) == 1
    assert len(store.query(limit=1)) == 1 and store.labels() == ["bark", "cry"]
    assert len(store.query(label=["bark", "cry"])) == 4
    with pytest.raises(ParameterError, match="limit: must be a whole number from 1"):
        store.query(limit=0)


def test_retention_by_age_removes_rows_and_their_clips(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    store = EventStore(clips / "events.sqlite3", clip_folder=clips, max_age_days=7)
    old = NOW - timedelta(days=10)
    for event in _pair("cry", 0.0, origin=old, clip=_clip(clips, "old.mp3", 10)):
        store.record(event)
    for event in _pair("cry", 0.0, clip=_clip(clips, "new.mp3", 10)):
        store.record(event)
    assert store.prune(now=NOW.timestamp() + 60) == 1
    (kept,) = store.query()
    assert Path(kept.clip or "").name == "new.mp3"
    assert not (clips / "old.mp3").exists() and (clips / "new.mp3").exists()


def test_retention_by_clip_size_drops_the_oldest_first(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    store = EventStore(clips / "events.sqlite3", clip_folder=clips, max_clip_bytes=250)
    for i in range(4):
        for event in _pair("cry", 60.0 * i, clip=_clip(clips, f"c{i}.mp3", 100)):
            store.record(event)
    outside = _clip(tmp_path, "elsewhere.mp3", 100)  # never deleted: not in the clip folder
    for event in _pair("bark", -60.0, clip=outside):
        store.record(event)
    assert store.prune() == 3
    assert sorted(Path(e.clip or "").name for e in store.query()) == ["c2.mp3", "c3.mp3"]
    assert sorted(p.name for p in clips.glob("*.mp3")) == ["c2.mp3", "c3.mp3"]
    assert Path(outside).exists()


def test_history_action_records_and_prunes(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    store = EventStore(clips / "events.sqlite3", clip_folder=clips, max_clip_bytes=150)
    action = HistoryAction(store, model="m")
    action.open()
    for i in range(3):
        begin, end = _pair("cry", 60.0 * i, clip=_clip(clips, f"c{i}.mp3", 100))
        action.handle(begin)
        action.handle(end)
    action.close()
    assert [Path(e.clip or "").name for e in store.query()] == ["c2.mp3"]


def test_a_sound_left_open_by_a_killed_run_is_marked_interrupted(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    begin, _ = _pair("cry", 5.0)
    store.record(begin)
    action = HistoryAction(EventStore(tmp_path / "events.sqlite3"))  # the next run
    action.open()
    (row,) = store.query()
    assert row.interrupted and row.duration == 0.0 and row.to_dict()["interrupted"] is True
    assert store.end_unfinished() == 0


def test_readers_and_a_writer_on_other_threads(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(50):
                for event in _pair("cry", float(i)):
                    store.record(event)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        store.query(limit=10)
    writer.join()
    assert not errors and store.count() == 50


def test_csv_export_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite3")
    for event in _pair("cry", 1.0):
        store.record(event)
    out = write_csv(store.query(), tmp_path / "events.csv")
    rows = list(csv.reader(out.open()))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[1][1] == "cry" and rows[1][4] == "4.0"
    with pytest.raises(ParameterError, match="already exists; use --force"):
        write_csv([], out)
    write_csv([], out, force=True)
    assert len(out.read_text().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".csv"] == ["events.csv"]
    with pytest.raises(ParameterError, match="is a folder; give a file name such as events.csv"):
        write_csv([], tmp_path, force=True)


def test_parse_when_forms() -> None:
    now = time.time()
    assert parse_when("1d", now=now) == pytest.approx(now - 86400)
    assert parse_when("30m", now=now) == pytest.approx(now - 1800)
    assert parse_when("1.5h", now=now) == pytest.approx(now - 5400)
    assert parse_when("2026-05-06T12:00:00+00:00") == NOW.timestamp()
    assert parse_when("2026-05-06T12:00:00Z") == NOW.timestamp()
    assert parse_when("1778068800") == 1778068800.0
    assert parse_when(None) is None and parse_when("") is None
    local_midnight = datetime(2026, 5, 6).astimezone().timestamp()
    assert parse_when("2026-05-06") == local_midnight
    with pytest.raises(ParameterError, match="since: expected an age such as 1d"):
        parse_when("yesterday")


def test_bad_files_and_settings_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no event history here yet"):
        EventStore(tmp_path / "none.sqlite3", create=False)
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("this is not a database, it is a text file " * 100)
    with pytest.raises(HistoryError, match=r"junk.sqlite3: file is not a database; move it away"):
        EventStore(junk)
    with pytest.raises(ParameterError, match="max_age_days"):
        EventStore(tmp_path / "a.sqlite3", max_age_days=-1)
    with pytest.raises(ParameterError, match="max_clip_bytes"):
        EventStore(tmp_path / "a.sqlite3", max_clip_bytes=-5)
