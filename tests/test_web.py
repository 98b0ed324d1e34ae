"""The web page's server (Starlette + uvicorn on a loopback port): API, clips, health, metrics, token."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import encode, make_recording
from micmon.actions import ClipAction
from micmon.detect import DetectorSettings
from micmon.errors import ParameterError
from micmon.history import EventStore, HistoryAction
from micmon.monitor import Monitor, file_source
from micmon.web import WebServer, parse_bind

SETTINGS = DetectorSettings(threshold=0.6, k=2, n=3, m=2)
HOP = 0.5


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):  # noqa: ANN201 - Model
    from micmon.model import Model

    return Model.load(trained_model_dir)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 s of background with the positive beeps from 3 s to 8 s."""
    return (
        make_recording(
            tmp_path_factory.mktemp("rec") / "r", seconds=16.0, events=[(3.0, 8.0)], fmt="wav", seed=4
        )
        / "audio.wav"
    )


def get(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `url`; return (status, headers, body) whatever the status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalisation of .. or %2e)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


class Served:
    """A finished file replay (history + clips) and its page on a loopback port."""

    def __init__(self, monitor: Monitor, server: WebServer, store: EventStore, clips: Path) -> None:
        self.monitor, self.server, self.store, self.clips = monitor, server, store, clips
        self.url = f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def served(
    model,
    recording: Path,  # noqa: ANN001
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    clips = tmp_path_factory.mktemp("served") / "clips"
    store = EventStore(clips / "events.sqlite3", clip_folder=clips)
    server = WebServer("127.0.0.1:0", store=store, clip_folder=clips, model="tiny")
    monitor = Monitor(
        model,
        file_source(recording, spec=model.spec, hop=HOP, realtime=False),
        settings=SETTINGS,
        hop=HOP,
        live=False,
        actions=[ClipAction(clips, pre_roll=1.0), HistoryAction(store)],
    )
    server.start(monitor)
    monitor.run()
    try:
        yield Served(monitor, server, store, clips)
    finally:
        server.stop()


def test_api_events_status_and_clip(served: Served) -> None:
    code, headers, body = get(f"{served.url}/api/events")
    assert code == 200
    (event,) = json.loads(body)["events"]
    assert event["label"] == "positive" and 4.0 <= event["duration"] <= 7.0
    assert event["clip_url"].startswith("/clips/positive-") and event["clip_url"].endswith(".mp3")
    code, headers, audio = get(served.url + event["clip_url"])
    assert code == 200 and headers["content-type"] == "audio/mpeg" and audio[:3] in (b"ID3", b"\xff\xfb")
    code, _, body = get(f"{served.url}/api/events?label=negative")
    assert json.loads(body)["events"] == []
    code, _, body = get(f"{served.url}/api/events?since=1d&limit=5")
    assert len(json.loads(body)["events"]) == 1
    code, _, body = get(f"{served.url}/api/events?until=2000-01-01")
    assert json.loads(body)["events"] == []
    code, _, body = get(f"{served.url}/api/events?since=yesterday")
    assert code == 400 and "since: expected an age" in json.loads(body)["error"]
    code, _, body = get(f"{served.url}/api/events?limit=lots")
    assert code == 400 and "limit" in json.loads(body)["error"]
    # the redirect MQTT links to
    code, headers, audio = get(f"{served.url}/events/{event['key']}/clip")
    assert code == 200 and headers["content-type"] == "audio/mpeg"
    assert get(f"{served.url}/events/nope-1/clip")[0] == 404
    status = json.loads(get(f"{served.url}/api/status")[2])
    assert status["targets"] == ["positive"] and status["labels"] == ["negative", "positive"]
    assert status["stats"]["windows"] == served.monitor.stats.windows  # none gated here
    assert len(status["series"]["time"]) == len(status["series"]["scores"]["positive"]) > 10
    assert status["model"] == "tiny" and status["history_labels"] == ["positive"]


def test_page_and_its_assets_are_served_locally(served: Served) -> None:
    code, headers, body = get(served.url + "/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    html = body.decode()
    assert 'name="viewport"' in html and "http" not in html.replace('lang="en"', "")
    for asset in ("static/app.js", "static/style.css"):
        assert asset in html
        code, _, text = get(f"{served.url}/{asset}")
        assert code == 200 and b"http://" not in text and b"https://" not in text


@pytest.mark.parametrize(
    "path",
    [
        "/clips/../../../../etc/passwd",
        "/clips/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/clips/..%2F..%2F..%2Fetc%2Fpasswd",
        "/clips//etc/passwd",
        "/clips/events.sqlite3",
        "/clips/%2Fetc%2Fpasswd",
        "/clips/",
        "/clips/link.mp3",
        "/clips/../clips/../outside.mp3",
        "/clips/a%00.mp3",
        "/clips/%252e%252e/outside.mp3",
    ],
)
def test_clips_refuses_anything_outside_the_clip_folder(served: Served, path: str) -> None:
    secret = served.clips.parent / "outside.mp3"
    secret.write_bytes(b"SECRET")
    link = served.clips / "link.mp3"
    if not link.exists():
        link.symlink_to(secret)
    code, body = raw_get(served.server.port, path)
    assert code in (403, 404), (code, body[:100])
    assert b"SECRET" not in body and b"root:" not in body and b"SQLite" not in body


def test_metrics_parse_as_prometheus_text(served: Served) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    code, headers, body = get(f"{served.url}/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {
        "micmon_windows_scored",
        "micmon_events",
        "micmon_audio_dropped_seconds",
        "micmon_capture_restarts",
        "micmon_action_failures",
        "micmon_last_window_age_seconds",
    } <= set(families)
    events = {s.labels["label"]: s.value for s in families["micmon_events"].samples}
    assert events == {"positive": 1.0}
    failures = {s.labels["type"]: s.value for s in families["micmon_action_failures"].samples}
    assert failures == {"clip": 0.0, "history": 0.0}
    assert families["micmon_windows_scored"].samples[0].value == served.monitor.stats.windows


def test_healthz_200_while_audio_flows_503_when_down_or_silent(
    model,
    recording: Path,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    zeros = encode(tmp_path / "zeros.wav", np.zeros(44100 * 30, dtype=np.float32), 44100)
    # Real time: the file plays for as long as a microphone would; silence counts after 3 s.
    for path, expected in ((recording, "ok"), (zeros, "silent")):
        monitor = Monitor(
            model,
            file_source(path, spec=model.spec, hop=HOP, realtime=True),
            settings=SETTINGS,
            hop=HOP,
            live=False,
            silence_seconds=3.0,
        )
        server = WebServer("127.0.0.1:0")
        server.start(monitor)
        url = f"http://127.0.0.1:{server.port}/healthz"
        assert get(url)[0] == 503  # starting: no audio yet
        thread = threading.Thread(target=monitor.run)
        thread.start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                code, _, body = get(url)
                if json.loads(body)["status"] == expected:
                    break
                time.sleep(0.2)
            assert json.loads(body)["status"] == expected
            assert code == (200 if expected == "ok" else 503)
        finally:
            monitor.stop()
            thread.join(10)
        code, _, body = get(url)
        assert code == 503 and json.loads(body)["status"] == "down"
        server.stop()


def test_token_is_required_when_set_and_off_loopback(model, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(
        ParameterError,
        match="0.0.0.0:8080 is reachable from other machines, so "
        "the page needs a token: set monitor.web_token",
    ):
        WebServer("0.0.0.0:8080")
    with pytest.raises(ParameterError, match="web_token: must be a string of at least 8"):
        WebServer("127.0.0.1:0", token="short")
    token = "s3cret-token-1234"
    server = WebServer("127.0.0.1:0", token=token)
    server.start(
        Monitor(
            model,
            file_source(
                make_recording(tmp_path / "r", seconds=3.0, events=[], fmt="wav").joinpath("audio.wav"),
                spec=model.spec,
                hop=HOP,
            ),
            hop=HOP,
            live=False,
        )
    )
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/", "/api/status", "/api/events", "/metrics", "/clips/x.mp3"):
            code, _, body = get(base + path)
            assert code == 401 and b"needs its token" in body, path
        assert get(base + "/healthz")[0] == 503  # public, and no audio yet
        assert get(base + "/api/status", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert get(base + "/api/status", headers={"Authorization": "Bearer wrong-token"})[0] == 401
        code, headers, _ = get(f"{base}/?token={token}")
        assert code == 200 and "micmon_token=" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"]
        assert get(base + "/api/events", headers={"Cookie": cookie})[0] == 200
    finally:
        server.stop()


def test_bind_forms_and_a_busy_port() -> None:
    assert (parse_bind("8080").host, parse_bind("8080").port) == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:80").host == "0.0.0.0" and not parse_bind("0.0.0.0:80").loopback
    assert parse_bind("[::1]:8080").host == "::1" and parse_bind("[::1]:8080").loopback
    assert parse_bind("localhost:1").loopback
    for bad in ("", "web", "host:", "1:2:x", "99999"):
        with pytest.raises(ParameterError, match="web: expected PORT or HOST:PORT"):
            parse_bind(bad)
    first = WebServer("127.0.0.1:0")
    try:
        from micmon.web import WebError

        with pytest.raises(
            WebError,
            match=f"cannot listen on 127.0.0.1:{first.port} "
            r"\(Address already in use\)",
        ):
            WebServer(f"127.0.0.1:{first.port}")
    finally:
        first.stop()


def test_missing_extra_is_one_line(trained_model_dir: Path, recording: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; from micmon_cli.app import main; "
        "sys.argv = ['micmon'] + sys.argv[1:]; main()"
    )
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "monitor",
            "--model",
            str(trained_model_dir),
            "--input",
            str(recording),
            "--fast",
            "--json",
            "--web",
            "0",
        ],
        env={**env, "MICMON_NO_LIVE": "1", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: the web page needs the web extra (starlette is missing): pip install 'micmon[web]'"
    ], proc.stderr
    assert proc.stdout == ""
