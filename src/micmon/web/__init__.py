"""The monitor's web page (``micmon monitor --web``): live state, event history, clips, health, metrics.

Built on Starlette and served by uvicorn on a background thread of the monitor's process; both
come with the optional extra ``micmon[web]`` and are imported only by `WebServer.start`, so
``import micmon`` stays light. The routes are described in `micmon.web.app`.

Listening on a non-loopback address requires a token: requests then carry it as
``Authorization: Bearer <token>``, as a ``micmon_token`` cookie, or once as ``?token=<token>``
(which sets the cookie, so a browser needs it only in the first link).

Example::

    server = WebServer("8080", store=store, clip_folder="~/micmon-clips")  # checks, binds
    server.start(monitor)    # serves on a thread; MQTT actions get clip URLs of this page
    print(server.url)        # http://127.0.0.1:8080
    monitor.run()
    server.stop()
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micmon._io import expand_path
from micmon.errors import MicmonError, ParameterError

if TYPE_CHECKING:
    from micmon.history import EventStore
    from micmon.monitor import Monitor

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Seconds to wait for the server to accept connections, and for it to stop.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
INSTALL_HINT = "pip install 'micmon[web]'"


class WebError(MicmonError):
    """The web page cannot start (missing extra, address in use, missing token)."""


@dataclass(frozen=True)
class Bind:
    """Where the web page listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str | int) -> Bind:
    """Parse ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` (host default 127.0.0.1; port 0: any free one)."""
    value = str(text).strip()
    host, _, port_text = value.rpartition(":")
    if not host:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or not host or " " in host:
        raise ParameterError(f"web: expected PORT or HOST:PORT such as 8080 or 0.0.0.0:8080, got {text!r}")
    return Bind(host, port)


def check_token(bind: Bind, token: str | None) -> str | None:
    """Return the token to require (None on loopback without one); refuse non-loopback without one."""
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 8):
        raise ParameterError(
            "web_token: must be a string of at least 8 characters (e.g. from `openssl rand -hex 16`)"
        )
    if token is None and not bind.loopback:
        raise ParameterError(
            f"web: {bind} is reachable from other machines, so the page needs "
            "a token: set monitor.web_token (e.g. from `openssl rand -hex 16`) "
            "or listen on 127.0.0.1"
        )
    return token.strip() if token else None


class WebServer:
    """Serve the web page of a `Monitor` with uvicorn on a daemon thread.

    The constructor checks everything that can fail (the extra is installed, the token, the
    address is free: it binds it), so a caller can build it before starting anything else;
    `start` then serves.

    Parameters
    ----------
    bind : str or Bind
        ``PORT`` or ``HOST:PORT`` (default host 127.0.0.1; port 0 picks a free one).
    store : EventStore, optional
        The event history shown and queried by ``/api/events``.
    clip_folder : path, optional
        The only folder ``/clips/<name>`` serves files from.
    token : str, optional
        Required on every route but ``/healthz``; mandatory on a non-loopback address.
    model : str, optional
        Shown on the page.
    """

    def __init__(
        self,
        bind: str | int | Bind,
        *,
        store: EventStore | None = None,
        clip_folder: str | os.PathLike[str] | None = None,
        token: str | None = None,
        model: str | None = None,
    ) -> None:
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:
            raise WebError(
                f"the web page needs the web extra ({exc.name} is missing): {INSTALL_HINT}"
            ) from None
        self.monitor: Any = None
        self.store = store
        self.clip_folder = None if clip_folder is None else expand_path(clip_folder)
        self.bind = bind if isinstance(bind, Bind) else parse_bind(bind)
        self.token = check_token(self.bind, token)
        self.model = model
        self.stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = self.bind.port
        self._socket = self._listen()

    @property
    def url(self) -> str:
        """The page's address (the host name when listening on every interface)."""
        host = self.bind.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def app(self) -> Any:
        """Return the Starlette application (imports the web extra)."""
        from micmon.web.app import create_app

        return create_app(self)

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.bind.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.bind.host, self.bind.port))
        except OSError as exc:
            sock.close()
            raise WebError(
                f"web: cannot listen on {self.bind} ({exc.strerror or exc}); choose another port or address"
            ) from None
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    def start(self, monitor: Monitor) -> WebServer:
        """Serve `monitor`'s page on a background thread; its MQTT actions link clips to it."""
        import uvicorn

        self.monitor = monitor
        for action in monitor.actions.actions:
            if hasattr(action, "clip_base_url"):
                action.clip_base_url = self.url
        app = self.app()
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1, ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="micmon-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise WebError(f"web: the server did not start on {self.bind}")
            time.sleep(0.02)
        log.info("web page at %s", self.url)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        """Close live streams and stop the server (waits a few seconds at most)."""
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        self._socket.close()


def clip_url(base: str, clip: str | None, clip_folder: Path | None) -> str | None:
    """Return the ``/clips/<name>`` URL of a clip inside `clip_folder` (None otherwise)."""
    if not clip or clip_folder is None:
        return None
    try:
        rel = Path(clip).resolve().relative_to(clip_folder.resolve())
    except (ValueError, OSError):
        return None
    from urllib.parse import quote

    return f"{base}/clips/{quote(rel.as_posix())}"
