"""LiveStatus: audio health (flowing, down, digital silence), series, listeners; Prometheus text."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from helpers import encode, make_recording
from micmon.detect import DetectorSettings, Event
from micmon.monitor import Monitor, WindowResult, file_source
from micmon.status import DOWN, OK, SILENT, STARTING, LiveStatus, prometheus_text


def _window(level: float, score: float = 0.1, start: float = 0.0) -> WindowResult:
    return WindowResult(
        start=start, end=start + 1.0, level_dbfs=level, scores={"cry": score}, gated=False, events=()
    )


def test_health_follows_windows_silence_and_capture() -> None:
    status = LiveStatus(["cry"], silence_seconds=1.5)
    heard: list[tuple[bool, float | None]] = []
    status.add_listener(lambda healthy, level: heard.append((healthy, level)))
    assert status.health == STARTING and not status.healthy
    status.window(_window(-30.0, 0.7))
    assert status.health == OK and heard[-1] == (True, -30.0)
    status.window(_window(-math.inf, start=1.0))
    assert status.health == OK  # one silent second is not yet silence
    status.window(_window(-math.inf, start=1.5))
    assert status.health == SILENT and heard[-1] == (False, None)
    status.window(_window(-40.0, start=2.0))
    assert status.health == OK
    status.capture(False)
    assert status.health == DOWN and heard[-1] == (False, None)
    snap = status.snapshot()
    assert snap["level_dbfs"] is None and snap["scores"] == {"cry": 0.1}
    series = status.series()
    assert len(series["time"]) == 4 and series["level_dbfs"][:2] == [-30.0, None]
    assert series["scores"]["cry"][0] == 0.7


def test_events_are_counted_by_label_and_active_ones_shown() -> None:
    status = LiveStatus(["cry"])
    origin = datetime(2026, 5, 6, tzinfo=timezone.utc)
    start = Event("start", "cry", 5.0, None, 0.9, 0.9, 0.9, 2, origin)
    status.event(start)
    assert status.snapshot()["active"] == {"cry": origin.timestamp() + 5.0}
    status.event(Event("end", "cry", 5.0, 9.0, 0.1, 0.9, 0.9, 8, origin))
    assert status.snapshot()["active"] == {} and status.events_by_label["cry"] == 1


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):  # noqa: ANN201 - Model
    from micmon.model import Model

    return Model.load(trained_model_dir)


def _parse(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_monitor_metrics_parse_as_prometheus_text(model, tmp_path: Path) -> None:  # noqa: ANN001
    path = make_recording(tmp_path / "r", seconds=12.0, events=[(3.0, 8.0)], fmt="wav", seed=3) / "audio.wav"
    monitor = Monitor(
        model,
        file_source(path, spec=model.spec, hop=0.5, realtime=False),
        settings=DetectorSettings(threshold=0.6, k=2, n=3, m=2),
        hop=0.5,
        live=False,
    )
    monitor.run()
    samples = _parse(prometheus_text(monitor))
    windows = monitor.stats.windows
    assert samples[("micmon_windows_scored_total", ())] == windows > 0
    assert samples[("micmon_events_total", (("label", "positive"),))] == 1
    assert samples[("micmon_capture_restarts_total", ())] == 0
    assert samples[("micmon_audio_dropped_seconds_total", ())] == 0
    assert samples[("micmon_audio_up", ())] == 0  # the file ended: capture is down
    assert samples[("micmon_last_window_age_seconds", ())] >= 0
    assert ("micmon_score", (("label", "positive"),)) in samples
    assert ("micmon_score", (("label", "negative"),)) not in samples


def test_digital_silence_makes_the_monitor_unhealthy(model, tmp_path: Path) -> None:  # noqa: ANN001
    zeros = encode(tmp_path / "zeros.wav", np.zeros(44100 * 6, dtype=np.float32), 44100)
    seen: list[str] = []
    monitor = Monitor(
        model,
        file_source(zeros, spec=model.spec, hop=0.5, realtime=False),
        hop=0.5,
        live=False,
        silence_seconds=3.0,
        on_window=lambda r: seen.append(monitor.status.health),
    )
    monitor.run()
    assert seen[0] == OK and seen[-1] == SILENT
