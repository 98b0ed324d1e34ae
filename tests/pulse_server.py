"""A private PulseAudio server with a null sink, for tests that capture or play audio.

Usage::

    with PulseServer() as pulse:          # or the `pulse_server` fixture in a conftest
        env = pulse.env                   # PULSE_SERVER=unix:<socket> (+ runtime dirs)
        subprocess.run(["paplay", "-d", pulse.sink, "beep.wav"], env=env)
        # capture with: ffmpeg -f pulse -i <pulse.monitor>  (with `env`)

It runs as any user, root included: `--system` is avoided (it needs a `pulse` user and D-Bus);
instead the daemon gets its own HOME/runtime/state folders, no pid file (so it never clashes with
another PulseAudio on the machine), no autospawn, and anonymous auth on a private unix socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from helpers import stop_process

#: Seconds to wait for the daemon to accept connections.
START_TIMEOUT = 10.0


class PulseUnavailable(RuntimeError):
    """pulseaudio is not installed or would not start."""


class PulseServer:
    """Start `pulseaudio` with a null sink on a private socket; stop it on exit."""

    def __init__(self, sink: str = "micmon_test", *, rate: int = 44100) -> None:
        self.sink = sink
        self.rate = rate
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def monitor(self) -> str:
        """The source that records what is played into the sink."""
        return f"{self.sink}.monitor"

    @property
    def socket(self) -> Path:
        """The server's unix socket."""
        assert self.dir is not None
        return self.dir / "native"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus what clients need to reach this server (and only it)."""
        assert self.dir is not None
        return {
            **os.environ,
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.dir),
            "PULSE_STATE_PATH": str(self.dir),
            "PULSE_COOKIE": str(self.dir / "cookie"),
        }

    def start(self) -> PulseServer:
        """Start the daemon and wait until it answers; raise PulseUnavailable if it cannot."""
        exe = shutil.which("pulseaudio")
        if exe is None or shutil.which("pactl") is None:
            raise PulseUnavailable("pulseaudio/pactl not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="micmon-pulse-"))
        script = self.dir / "default.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={self.sink} rate={self.rate}\n"
            f"set-default-sink {self.sink}\n"
            f"set-default-source {self.monitor}\n"
        )
        env = {
            **os.environ,
            "HOME": str(self.dir),
            "XDG_RUNTIME_DIR": str(self.dir),
            "XDG_CONFIG_HOME": str(self.dir),
            "PULSE_RUNTIME_PATH": str(self.dir),
            "PULSE_STATE_PATH": str(self.dir),
        }
        env.pop("PULSE_SERVER", None)
        self.log = open(self.dir / "pulseaudio.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                exe,
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disallow-exit",
                "--disable-shm",
                "--no-cpu-limit",
                "--log-target=stderr",
                "-F",
                str(script),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ok = subprocess.run(
                ["pactl", "list", "short", "sinks"], env=self.env, capture_output=True, text=True, check=False
            )
            if ok.returncode == 0 and self.sink in ok.stdout:
                return self
            time.sleep(0.1)
        log = (self.dir / "pulseaudio.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise PulseUnavailable(f"pulseaudio did not start:\n{log}")

    def play(self, path: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
        """Start playing an audio file into the sink (paplay); return the process."""
        return subprocess.Popen(["paplay", "-d", self.sink, str(path)], env=self.env)

    def stop(self) -> None:
        """Stop the daemon and remove its folder."""
        proc, self.proc = self.proc, None
        stop_process(proc)
        if getattr(self, "log", None) is not None:
            self.log.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
