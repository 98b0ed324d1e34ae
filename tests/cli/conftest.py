"""Fixtures for the CLI tests: an isolated config environment, generated recordings, a model
trained through the CLI, and a private PulseAudio server (`pulse_server`, reusable by any test)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from helpers import make_recording
from micmon_cli.app import app
from pulse_server import PulseServer, PulseUnavailable

#: Recordings of the session workspace: (seconds, alarm events).
RECORDINGS = {
    "sample_1": (24.0, ((6.0, 14.0),)),
    "sample_2": (24.0, ((2.0, 8.0), (16.0, 22.0))),
    "sample_3": (24.0, ((10.0, 18.0),)),
}
TRAIN_EPOCHS = "8"

Invoke = Callable[..., Result]
_SESSION: dict[str, str] = {}


def _invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="session")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty micmon.yaml: built-in defaults, whatever the machine's own config says."""
    path = tmp_path_factory.mktemp("config") / "micmon.yaml"
    path.write_text("")
    return path


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in its own folder with its own HOME and no MICMON_CONFIG."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MICMON_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("MICMON_NO_LIVE", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def invoke() -> Invoke:
    """Run `micmon ARGS...` in-process through Typer's CliRunner."""
    return _invoke


def _assert_error(result: Result, *fragments: str) -> str:
    """Check a one-line error with exit code 1 and no traceback; return the line."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def assert_error() -> Callable[..., str]:
    """`assert_error(result, *fragments)`: one red line holding the fragments, exit 1, no traceback."""
    return _assert_error


# -- session data: recordings -> datasets -> model, all made through the CLI --------------------
@pytest.fixture(scope="session")
def recordings() -> dict[str, tuple[float, tuple[tuple[float, float], ...]]]:
    """The session recordings: name -> (seconds, positive events)."""
    return RECORDINGS


@pytest.fixture(scope="session")
def cli_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three labelled sample folders (beeping = positive over noise and hum)."""
    root = tmp_path_factory.mktemp("cli_audio") / "audio"
    for i, (name, (seconds, events)) in enumerate(RECORDINGS.items()):
        make_recording(root / name, seconds=seconds, events=events, rate=22050, seed=10 + i)
    return root


@pytest.fixture(scope="session")
def cli_data(cli_audio: Path, empty_config: Path) -> Path:
    """The recordings as spectrum datasets, made by `micmon datagen` (250-7500 Hz, 2 s windows).

    The README's spectrum + dense path trains in seconds on this little audio; the default logmel
    + cnn path is covered by tests/test_cnn.py and tests/cli/test_evaluate.py."""
    out = cli_audio.parent / "data"
    result = _invoke(
        ["datagen", "--feature", "spectrum", "--low", "250", "--high", "7500", cli_audio, out],
        env={"MICMON_CONFIG": str(empty_config)},
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def cli_model(cli_data: Path, empty_config: Path) -> Path:
    """A model trained by `micmon train --plot` on the datasets."""
    out = cli_data.parent / "model"
    result = _invoke(
        ["train", cli_data, out, "--epochs", TRAIN_EPOCHS, "--plot"], env={"MICMON_CONFIG": str(empty_config)}
    )
    assert result.exit_code == 0, result.output
    _SESSION["train_output"] = result.output
    return out


@pytest.fixture(scope="session")
def cli_train_output(cli_model: Path) -> str:
    """What `micmon train` printed when it made `cli_model`."""
    return _SESSION["train_output"]


# -- PulseAudio -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pulse_server() -> Iterator[PulseServer]:
    """A private PulseAudio server with a null sink (see tests/pulse_server.py); skips without one."""
    try:
        server = PulseServer(sink="micmon_cli_test").start()
    except PulseUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pulse_env(pulse_server: PulseServer, monkeypatch: pytest.MonkeyPatch) -> PulseServer:
    """`pulse_server` with its PULSE_SERVER etc. set in this test's environment."""
    for key in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH", "PULSE_COOKIE"):
        monkeypatch.setenv(key, pulse_server.env[key])
    return pulse_server


def env_without_config() -> dict[str, str]:
    """os.environ without MICMON_CONFIG, for subprocesses."""
    return {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
