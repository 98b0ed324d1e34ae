"""micmon.model.runtime: which LiteRT interpreter is used, the fallback order, the errors."""

from __future__ import annotations

import importlib.util
import logging
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from micmon.errors import MicmonError, MissingDependencyError
from micmon.model.runtime import (
    RUNTIME_CANDIDATES,
    LiteRTRunner,
    find_runtime,
    runtime,
    runtime_name,
)

NOT_INSTALLED = ("micmon_no_such_runtime.interpreter", "micmon-no-such-runtime")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None


def test_runtime_name_is_the_first_installed_candidate() -> None:
    expected = next(m.split(".")[0] for m, _ in RUNTIME_CANDIDATES if _installed(m))
    assert runtime_name() == expected
    assert runtime() is runtime()  # looked up once per process
    assert runtime().version == version(runtime().distribution)


def test_candidates_are_litert_then_tflite_runtime_then_tensorflow() -> None:
    assert [m for m, _ in RUNTIME_CANDIDATES] == [
        "ai_edge_litert.interpreter",
        "tflite_runtime.interpreter",
        "tensorflow.lite.python.interpreter",
    ]


@pytest.mark.skipif(not _installed("ai_edge_litert"), reason="ai-edge-litert is not installed")
def test_a_missing_candidate_is_skipped() -> None:
    found = find_runtime([NOT_INSTALLED, ("ai_edge_litert.interpreter", "ai-edge-litert")])
    assert (found.name, found.distribution) == ("ai_edge_litert", "ai-edge-litert")
    from ai_edge_litert.interpreter import Interpreter

    assert found.interpreter is Interpreter


@pytest.mark.skipif(not _installed("tensorflow"), reason="TensorFlow is not installed")
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_without_litert_packages_tensorflow_lite_is_used(
    monkeypatch: pytest.MonkeyPatch, trained_model_dir: Path
) -> None:
    for name in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
    ):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    found = find_runtime()
    assert found.name == "tensorflow"
    # The fallback really scores a model saved by micmon, like the preferred runtime does.
    x = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    monkeypatch.setattr("micmon.model.runtime.runtime", lambda: found)
    via_tf = LiteRTRunner(trained_model_dir / "model.tflite")
    monkeypatch.undo()
    preferred = LiteRTRunner(trained_model_dir / "model.tflite")
    assert via_tf.runtime.name == "tensorflow" and preferred.runtime.name == runtime_name()
    np.testing.assert_allclose(via_tf(x), preferred(x), atol=1e-5)


def test_a_module_without_interpreter_is_skipped() -> None:
    with pytest.raises(MissingDependencyError, match="json: has no Interpreter"):
        find_runtime([("json", "json")])


def test_no_runtime_says_what_to_install() -> None:
    with pytest.raises(MissingDependencyError) as info:
        find_runtime([NOT_INSTALLED])
    message = str(info.value)
    assert isinstance(info.value, MicmonError)
    assert "\n" not in message
    assert "tried micmon_no_such_runtime.interpreter" in message
    assert "pip install ai-edge-litert" in message and "tflite-runtime" in message
    # A module that is simply absent is the normal case, not reported as broken.
    assert "No module named" not in message


def test_a_broken_runtime_is_named_with_its_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime that is installed but fails to import (e.g. built for another numpy) says why."""
    package = tmp_path / "micmon_broken_runtime"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "interpreter.py").write_text("import micmon_missing_native_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        find_runtime([("micmon_broken_runtime.interpreter", "micmon-broken-runtime")])
    assert "micmon_broken_runtime.interpreter: No module named 'micmon_missing_native_dep'" in str(info.value)


def test_runner_logs_the_runtime_at_debug(trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="micmon"):
        runner = LiteRTRunner(trained_model_dir / "model.tflite")
    assert runner.runtime is runtime()
    assert f"scoring with {runtime_name()} {runtime().version}" in caplog.text
