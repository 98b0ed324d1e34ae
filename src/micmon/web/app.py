"""The Starlette application behind `micmon.web.WebServer` (imported only with the web extra).

Routes:

- ``/``: the page (static HTML, CSS and JavaScript served from this package: no CDN).
- ``/api/status``: labels, live state, counters and the last minute of levels and scores.
- ``/api/live``: server-sent events, `LIVE_INTERVAL` apart: level, scores, health, what is going
  on, and the history's version (the page reloads the event list when it changes).
- ``/api/events?since=&until=&label=&limit=``: the history, newest first (times as ages such as
  ``1d``, ISO 8601 or Unix seconds).
- ``/clips/<name>``: a clip file, only from inside the clip folder and only mp3/wav.
- ``/events/<key>/clip``: a redirect to the clip of the event with that key (links in MQTT).
- ``/healthz``: 200 while audio flows, 503 when the capture is down or the input is digital
  silence (never needs the token).
- ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from micmon.errors import MicmonError
from micmon.history import DEFAULT_LIMIT, parse_when

if TYPE_CHECKING:
    from micmon.web import WebServer

STATIC = Path(__file__).with_name("static")
#: Seconds between two live updates (4 per second).
LIVE_INTERVAL = 0.25
CLIP_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav"}
COOKIE = "micmon_token"
#: Routes reachable without the token.
PUBLIC = ("/healthz",)
#: A window older than this (or a multiple of the hop) means audio stopped, whatever the health says.
STALE_WINDOW_SECONDS = 10.0
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TokenGate:
    """ASGI middleware: every route but `PUBLIC` needs the token (header, cookie or ?token=)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _matches(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self._matches(auth[7:].strip()):
            await self.app(scope, receive, send)
            return
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        if COOKIE in cookie and self._matches(cookie[COOKIE].value):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self._matches((query.get("token") or [None])[0]):

            async def send_with_cookie(message: Any) -> None:
                if message["type"] == "http.response.start":
                    value = (
                        f"{COOKIE}={quote(self.token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
                    )
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"set-cookie", value.encode("latin-1"))],
                    }
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        response = PlainTextResponse(
            "micmon: this page needs its token: open it as /?token=<monitor.web_token>\n",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def create_app(server: WebServer) -> Any:
    """Return the ASGI application of `server` (a `micmon.web.WebServer`)."""
    from micmon.status import prometheus_text
    from micmon.web import clip_url

    monitor = server.monitor
    store = server.store
    clips = server.clip_folder

    def event_dict(stored: Any) -> dict[str, Any]:
        data: dict[str, Any] = stored.to_dict()
        data["clip_url"] = clip_url("", stored.clip, clips)
        return data

    def history_version() -> int:
        return store.version if store is not None else 0

    def counters() -> dict[str, Any]:
        stats = monitor.stats
        return {
            "windows": stats.windows - stats.gated,
            "gated": stats.gated,
            "detections": sum(monitor.status.events_by_label.values()),
            "reconnects": stats.reconnects,
            "audio_seconds": round(stats.audio_seconds, 3),
            "dropped_seconds": round(monitor.dropped_seconds, 3),
            "last_error": stats.last_error,
        }

    def live_payload() -> dict[str, Any]:
        snap: dict[str, Any] = monitor.status.snapshot()
        snap["history_version"] = history_version()
        snap["stats"] = counters()
        return snap

    async def index(request: Request) -> Response:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def status(request: Request) -> Response:
        detector = monitor.listener.detector
        return JSONResponse(
            {
                **live_payload(),
                "labels": list(detector.labels),
                "targets": list(detector.targets),
                "thresholds": detector.thresholds,
                "model": server.model,
                "hop_seconds": monitor.hop,
                "window_seconds": monitor.listener.window,
                "history": store is not None,
                "history_labels": await asyncio.to_thread(store.labels) if store is not None else [],
                "series": monitor.status.series(),
                "live_interval": LIVE_INTERVAL,
            }
        )

    async def live(request: Request) -> Response:
        async def stream() -> Any:
            yield "retry: 1000\n\n"
            while not server.stopping.is_set():
                yield f"data: {json.dumps(live_payload(), separators=(',', ':'))}\n\n"
                await asyncio.sleep(LIVE_INTERVAL)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def events(request: Request) -> Response:
        if store is None:
            return JSONResponse({"events": [], "history": False})
        q = request.query_params
        try:
            since = parse_when(q.get("since"), name="since")
            until = parse_when(q.get("until"), name="until")
            limit_text = q.get("limit") or str(DEFAULT_LIMIT)
            if not limit_text.isdigit():
                return _bad(f"limit: expected a whole number, got {limit_text!r}")
            rows = await asyncio.to_thread(
                store.query, since=since, until=until, label=q.get("label") or None, limit=int(limit_text)
            )
        except MicmonError as exc:
            return _bad(str(exc))
        return JSONResponse(
            {"events": [event_dict(r) for r in rows], "history": True, "version": history_version()}
        )

    async def clip(request: Request) -> Response:
        name = request.path_params["name"]
        if clips is None:
            return PlainTextResponse("no clip folder\n", status_code=404)
        root = clips.resolve()
        try:
            path = (root / name).resolve()
        except (OSError, RuntimeError, ValueError):  # loops, NUL bytes
            return PlainTextResponse("refused\n", status_code=403)
        if not path.is_relative_to(root) or path == root or path.suffix.lower() not in CLIP_TYPES:
            return PlainTextResponse("refused: only clips inside the clip folder\n", status_code=403)
        if not path.is_file():
            return PlainTextResponse("no such clip\n", status_code=404)
        return FileResponse(path, media_type=CLIP_TYPES[path.suffix.lower()])

    async def event_clip(request: Request) -> Response:
        key = request.path_params["key"]
        stored = await asyncio.to_thread(store.get, key) if store is not None else None
        if stored is None:
            return PlainTextResponse("no such event\n", status_code=404)
        url = clip_url("", stored.clip, clips)
        if url is None:
            message = "the sound is still going on" if stored.end is None else "no clip saved"
            return PlainTextResponse(f"{message}\n", status_code=404)
        return RedirectResponse(url, status_code=307)

    async def healthz(request: Request) -> Response:
        st = monitor.status
        health = st.health
        age = st.last_window_age()
        limit = max(STALE_WINDOW_SECONDS, 3 * monitor.listener.window)
        if health == "ok" and (age is None or age > limit):
            health = "stalled"
        ok = health == "ok"
        return JSONResponse(
            {
                "status": health,
                "last_window_age": None if age is None or not math.isfinite(age) else round(age, 3),
            },
            status_code=200 if ok else 503,
        )

    async def metrics(request: Request) -> Response:
        return Response(prometheus_text(monitor), media_type=METRICS_TYPE)

    routes = [
        Route("/", index),
        Route("/api/status", status),
        Route("/api/live", live),
        Route("/api/events", events),
        Route("/clips/{name:path}", clip),
        Route("/events/{key}/clip", event_clip),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app: Any = Starlette(routes=routes)
    if server.token:
        app = TokenGate(app, server.token)
    return app
