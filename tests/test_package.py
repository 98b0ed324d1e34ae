"""The package: one version, dependencies by platform, and the wheel installed without extras.

The slow tests build the sdist and wheel with `python -m build`, check them with twine, install
the wheel into a fresh virtualenv exactly as docs/raspberry-pi.md says (no extras, so no
TensorFlow), and run the detection commands there with a model trained in this test session.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import micmon
import micmon_cli
from helpers import make_recording

REPO = Path(__file__).resolve().parents[1]
#: The Python that creates the fresh virtualenv (python3 on the Pi; this interpreter here).
PYTHON = sys.executable
#: Monitor settings for the replay: a window every 0.5 s, start on 2 of 3, end after 2 below.
MONITOR_CONFIG = """\
monitor:
  hop: 0.5
  threshold: 0.6
  k: 2
  n: 3
  m: 2
  min_dbfs: -60
"""
#: The test recording: background with beeping (the positive sound) from 6 s to 14 s.
SECONDS, EVENT = 20.0, (6.0, 14.0)
#: Windows predict scores in it: 2 s windows every 0.5 s (a quarter window, the default hop).
WINDOWS = int((SECONDS - 2.0) / 0.5) + 1


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_the_version_lives_in_micmon_init() -> None:
    project = _pyproject()
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "micmon.__version__"}
    assert micmon_cli.__version__ == micmon.__version__


def _base_requirements(**environment: str) -> set[str]:
    """Return the names of the base dependencies pip installs in `environment`."""
    names = set()
    for line in _pyproject()["project"]["dependencies"]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": "", **environment}):
            names.add(f"{req.name}{req.specifier}" if req.name == "numpy" else req.name)
    return names


LINUX = {"sys_platform": "linux", "platform_system": "Linux"}


@pytest.mark.parametrize(
    ("environment", "present", "absent"),
    [
        pytest.param(
            {**LINUX, "platform_machine": "aarch64", "python_version": "3.11"},
            {"ai-edge-litert", "pydub"},
            {"tflite-runtime", "numpy<2", "audioop-lts"},
            id="64-bit-pi-os-bookworm",
        ),
        pytest.param(
            {**LINUX, "platform_machine": "aarch64", "python_version": "3.13"},
            {"ai-edge-litert", "audioop-lts"},
            {"tflite-runtime"},
            id="64-bit-pi-os-trixie",
        ),
        pytest.param(
            {**LINUX, "platform_machine": "armv7l", "python_version": "3.11"},
            {"tflite-runtime", "numpy<2"},
            {"ai-edge-litert"},
            id="32-bit-pi-os",
        ),
        pytest.param(
            {**LINUX, "platform_machine": "armv8l", "python_version": "3.11"},
            {"tflite-runtime", "numpy<2"},
            {"ai-edge-litert"},
            id="32-bit-python-on-64-bit-kernel",
        ),
        pytest.param(
            {**LINUX, "platform_machine": "x86_64", "python_version": "3.12"},
            {"ai-edge-litert"},
            {"tflite-runtime", "numpy<2"},
            id="linux-x86_64",
        ),
        pytest.param(
            {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "platform_machine": "arm64",
                "python_version": "3.12",
            },
            {"ai-edge-litert"},
            {"tflite-runtime"},
            id="macos-arm64",
        ),
    ],
)
def test_base_dependencies_by_platform(
    environment: dict[str, str], present: set[str], absent: set[str]
) -> None:
    names = _base_requirements(**environment)
    assert present <= names, names
    assert not absent & names, names
    assert not {"tensorflow", "keras", "matplotlib"} & names


def test_extras() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert [Requirement(r).name for r in extras["train"]] == ["tensorflow"]
    assert [Requirement(r).name for r in extras["plot"]] == ["matplotlib"]
    dev = [Requirement(r) for r in extras["dev"]]
    assert any(r.name == "micmon" and r.extras == {"train", "plot", "web"} for r in dev)
    assert [Requirement(r).name for r in extras["web"]] == ["starlette", "uvicorn"]
    assert {"pytest", "ruff", "mypy", "build", "twine", "pipx"} <= {r.name for r in dev}


#: The Pi guide's install commands; the slow tests below run them (with this venv's python3).
GUIDE_COMMANDS = (
    "python3 -m build",
    "python3 -m venv /opt/micmon/.venv",
    "/opt/micmon/.venv/bin/pip install micmon-*.whl",
    "/opt/micmon/.venv/bin/micmon --version",
    "pipx install micmon-*.whl",
)


def test_the_pi_guide_installs_the_way_these_tests_do() -> None:
    guide = (REPO / "docs" / "raspberry-pi.md").read_text()
    for command in GUIDE_COMMANDS:
        assert command in guide, command
    assert "--no-deps" not in guide  # no hand-copied dependency list to drift


# -- the built package ---------------------------------------------------------------------------
def _run(
    args: list[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from this checkout by `python -m build` (wheel from sdist)."""
    out = tmp_path_factory.mktemp("dist")
    _run([PYTHON, "-m", "build", "--outdir", out, REPO])
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("micmon-*.whl")
    return wheel


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_and_carry_what_runtime_needs(dist: Path) -> None:
    (sdist,) = dist.glob("micmon-*.tar.gz")
    wheel = _wheel(dist)
    assert wheel.name == f"micmon-{micmon.__version__}-py3-none-any.whl"
    assert sdist.name == f"micmon-{micmon.__version__}.tar.gz"
    checked = _run([PYTHON, "-m", "twine", "check", "--strict", sdist, wheel])
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"micmon-{micmon.__version__}.dist-info/METADATA").decode()
    assert {
        "micmon/py.typed",
        "micmon_cli/py.typed",
        "micmon/model/runtime.py",
        "micmon_cli/config.py",
    } <= names
    assert not any(n.startswith(("tests/", "bench/", "docs/")) for n in names)
    assert f"Version: {micmon.__version__}" in metadata
    assert 'Requires-Dist: tensorflow>=2.16; extra == "train"' in metadata


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed without extras: the commands of the Pi guide."""
    venv = tmp_path_factory.mktemp("pi") / "micmon-venv"
    # Without PYTHONPATH: pip would take this checkout's src/ for micmon already installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([PYTHON, "-m", "venv", venv], env=env)
    _run([venv / "bin" / "pip", "install", _wheel(dist)], env=env)
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture
def venv_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: built-in defaults (an empty config), no PYTHONPATH into this checkout."""
    config = tmp_path / "empty.yaml"
    config.write_text("")
    home = tmp_path / "home"
    home.mkdir()
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PIP_CACHE_DIR")
    return {
        **{k: os.environ[k] for k in keep if k in os.environ},
        "HOME": str(home),
        "MICMON_CONFIG": str(config),
        "MICMON_NO_LIVE": "1",
        "COLUMNS": "200",
    }


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


@pytest.mark.slow
def test_wheel_without_extras_has_no_tensorflow(wheel_venv: Path, venv_env: dict[str, str]) -> None:
    python = wheel_venv / "bin" / "python"
    for module in ("tensorflow", "keras"):
        proc = _run([python, "-c", f"import {module}"], env=venv_env, check=False)
        assert proc.returncode == 1 and f"No module named '{module}'" in proc.stderr, proc.stderr
    version = _run([wheel_venv / "bin" / "micmon", "--version"], env=venv_env).stdout.splitlines()
    assert version[0] == f"micmon {micmon.__version__}"
    assert version[1].startswith("runtime: ai_edge_litert ") or version[1].startswith(
        "runtime: tflite_runtime "
    ), version
    assert "training: not installed (pip install 'micmon[train]')" in version
    size = _size_mb(wheel_venv)
    print(f"virtualenv with the wheel, no extras: {size:.0f} MB")  # TensorFlow alone is ~1.9 GB
    assert size < 600, size


@pytest.mark.slow
def test_wheel_without_extras_predicts_and_monitors(
    wheel_venv: Path, venv_env: dict[str, str], trained_model_dir: Path, tmp_path: Path
) -> None:
    """predict and monitor run from the wheel alone and agree with this checkout's results."""
    from typer.testing import CliRunner

    from micmon_cli.app import app

    micmon_bin = wheel_venv / "bin" / "micmon"
    audio = (
        make_recording(tmp_path / "unseen", seconds=SECONDS, events=(EVENT,), seed=99, labels=False)
        / "audio.mp3"
    )
    predict = ["predict", "--model", trained_model_dir, audio]

    text = _run([micmon_bin, *predict], env=venv_env).stdout
    windows = [line for line in text.splitlines() if " - " in line]
    assert len(windows) == WINDOWS  # one line per window, a window every hop
    assert windows[0].split()[:3] == ["00:00", "-", "00:02"]
    assert 8 <= sum("positive" in line for line in windows) <= 22
    assert f"1 event in {WINDOWS} windows" in " ".join(text.split())

    # Windows, scores and events from the wheel's LiteRT runtime equal those of this checkout.
    rows = [
        json.loads(line) for line in _run([micmon_bin, *predict, "--json"], env=venv_env).stdout.splitlines()
    ]
    here = CliRunner().invoke(
        app, [str(a) for a in [*predict, "--json"]], env={"MICMON_CONFIG": venv_env["MICMON_CONFIG"]}
    )
    assert here.exit_code == 0, here.output
    expected = [json.loads(line) for line in here.stdout.splitlines()]
    assert [(r["type"], r["label"]) for r in rows] == [(r["type"], r["label"]) for r in expected]
    for got, want in zip(rows, expected, strict=True):
        for label, score in want.get("scores", {}).items():
            assert got["scores"][label] == pytest.approx(score, abs=1e-4)
    (event,) = [r for r in rows if r["type"] == "event"]
    assert event["label"] == "positive"
    assert EVENT[0] - 1.5 <= event["start"] <= EVENT[0] + 1.5, event
    assert EVENT[1] - 1.0 <= event["end"] <= EVENT[1] + 2.5, event

    config = tmp_path / "micmon.yaml"
    config.write_text(MONITOR_CONFIG)
    monitor = _run(
        [
            micmon_bin,
            "--config",
            config,
            "monitor",
            "--model",
            trained_model_dir,
            "--input",
            audio,
            "--fast",
            "--json",
        ],
        env=venv_env,
    )
    events = [json.loads(line) for line in monitor.stdout.splitlines()]
    assert [(e["event"], e["label"]) for e in events] == [("start", "positive"), ("end", "positive")]
    start, end = events[1]["start_seconds"], events[1]["end_seconds"]
    assert EVENT[0] - 1.5 <= start <= EVENT[0] + 1.5, events
    assert EVENT[1] - 1.0 <= end <= EVENT[1] + 2.5, events


@pytest.mark.slow
def test_wheel_without_extras_prepares_data_and_train_says_what_to_install(
    wheel_venv: Path, venv_env: dict[str, str], tmp_path: Path
) -> None:
    micmon_bin = wheel_venv / "bin" / "micmon"
    init = _run([micmon_bin, "config", "--init", tmp_path / "example.yaml"], env=venv_env)
    assert init.returncode == 0
    assert (tmp_path / "example.yaml").read_text() == (REPO / "micmon.yaml.example").read_text()

    make_recording(tmp_path / "audio" / "sample_1", seconds=12.0, events=((4.0, 8.0),), seed=3)
    _run([micmon_bin, "datagen", tmp_path / "audio", tmp_path / "data"], env=venv_env)
    assert (tmp_path / "data" / "sample_1.npz").exists()
    train = _run([micmon_bin, "train", tmp_path / "data", tmp_path / "model"], env=venv_env, check=False)
    assert train.returncode == 1, train.stderr
    errors = [line for line in train.stderr.splitlines() if line.strip()]
    assert errors[-1] == (
        "error: training needs TensorFlow (Keras), which is not installed: pip install 'micmon[train]'"
    ), train.stderr
    assert "Traceback" not in train.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_pipx_install_of_the_wheel(
    dist: Path, venv_env: dict[str, str], trained_model_dir: Path, tmp_path: Path
) -> None:
    """`pipx install micmon-*.whl`, the guide's other install, gives the same light command."""
    pytest.importorskip("pipx")
    env = {
        **venv_env,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    _run([PYTHON, "-m", "pipx", "install", _wheel(dist)], env=env)
    micmon_bin = tmp_path / "bin" / "micmon"
    version = _run([micmon_bin, "--version"], env=env).stdout
    assert "training: not installed (pip install 'micmon[train]')" in version, version
    audio = (
        make_recording(tmp_path / "short", seconds=8.0, events=((2.0, 6.0),), seed=5, labels=False)
        / "audio.mp3"
    )
    rows = [
        json.loads(r)
        for r in _run(
            [micmon_bin, "predict", "--model", trained_model_dir, audio, "--json"], env=env
        ).stdout.splitlines()
    ]
    assert [(r["type"], r["label"]) for r in rows if r["type"] == "event"] == [("event", "positive")]
    shutil.rmtree(tmp_path / "pipx", ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(
    sys.version_info >= (3, 12) or platform.machine() not in ("x86_64", "aarch64"),
    reason="tflite-runtime has wheels for Python <= 3.11 only",
)
def test_wheel_on_tflite_runtime_with_numpy_1(
    dist: Path, venv_env: dict[str, str], trained_model_dir: Path, tmp_path: Path
) -> None:
    """What 32-bit Raspberry Pi OS gets (tflite-runtime, numpy<2), tried where those wheels exist."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([PYTHON, "-m", "venv", venv], env=env)
    _run([venv / "bin" / "pip", "install", _wheel(dist), "tflite-runtime", "numpy<2"], env=env)
    _run([venv / "bin" / "pip", "uninstall", "--yes", "ai-edge-litert"], env=env)
    version = _run([venv / "bin" / "micmon", "--version"], env=venv_env).stdout.splitlines()
    assert version[1].startswith("runtime: tflite_runtime "), version
    numpy_version = _run(
        [venv / "bin" / "python", "-c", "import numpy; print(numpy.__version__)"], env=venv_env
    ).stdout
    assert numpy_version.startswith("1."), numpy_version
    audio = (
        make_recording(tmp_path / "unseen", seconds=SECONDS, events=(EVENT,), seed=99, labels=False)
        / "audio.mp3"
    )
    text = _run([venv / "bin" / "micmon", "-v", "predict", "--model", trained_model_dir, audio], env=venv_env)
    assert "scoring with tflite_runtime" in " ".join(text.stderr.split())
    assert f"1 event in {WINDOWS} windows" in " ".join(text.stdout.split())
    shutil.rmtree(venv, ignore_errors=True)
