"""Scoring runtimes: LiteRT for saved models (no TensorFlow import) and Keras for live ones.

The LiteRT interpreter comes from the first of these that imports: `ai_edge_litert` (the
`ai-edge-litert` wheel, installed with micmon where it has wheels), `tflite_runtime` (the
`tflite-runtime` wheel, installed on 32-bit ARM such as 32-bit Raspberry Pi OS), `tf.lite`
(TensorFlow, from `micmon[train]`). `runtime_name()` says which one is in use.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from micmon._deps import require_keras
from micmon.errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

#: Windows scored in one interpreter call; bounds memory for long files.
MAX_BATCH = 512
#: Inputs of at least this many values (a log-mel window: 198 x 40) are scored one window a call:
#: a CNN's activations for a batch outgrow the CPU cache (~0.5 MB a window in the default CNN's
#: first block), and one window a call measured 0.45 ms a window against 0.61 ms in calls of 64.
#: Always one window also means the input is never resized. Small inputs (spectrum bands) keep
#: large calls, whose fixed cost would otherwise dominate.
LARGE_INPUT = 4096

#: Where a LiteRT `Interpreter` class can come from, most preferred first:
#: (module holding `Interpreter`, the pip distribution that installs it).
RUNTIME_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),
)
#: What to install when no candidate imports.
RUNTIME_INSTALL_HINT = (
    "pip install ai-edge-litert (on 32-bit ARM: pip install tflite-runtime 'numpy<2'), "
    "or reinstall micmon so pip picks the right one"
)


@dataclass(frozen=True)
class Runtime:
    """A LiteRT interpreter provider: its top-level module, pip distribution and Interpreter class."""

    name: str
    distribution: str
    interpreter: Any

    @property
    def version(self) -> str:
        """The installed version of the distribution ("unknown" when pip metadata is missing)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return "unknown"


def find_runtime(candidates: Sequence[tuple[str, str]] = RUNTIME_CANDIDATES) -> Runtime:
    """Return the first candidate (module, distribution) whose module imports and has `Interpreter`."""
    failures = []
    for module_name, distribution in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # "No module named x" is the normal case; anything else is a broken install worth naming.
            if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                failures.append(f"{module_name}: {exc}")
            continue
        interpreter = getattr(module, "Interpreter", None)
        if interpreter is None:
            failures.append(f"{module_name}: has no Interpreter")
            continue
        return Runtime(name=module_name.split(".")[0], distribution=distribution, interpreter=interpreter)
    tried = ", ".join(name for name, _ in candidates)
    broken = f"; {'; '.join(failures)}" if failures else ""
    raise MissingDependencyError(
        f"no LiteRT runtime can be imported (tried {tried}{broken}): {RUNTIME_INSTALL_HINT}",
        package="ai-edge-litert",
    )


@functools.cache
def runtime() -> Runtime:
    """Return the LiteRT runtime micmon scores with (found once per process, see `find_runtime`)."""
    return find_runtime()


def runtime_name() -> str:
    """Return the module LiteRT models run on: "ai_edge_litert", "tflite_runtime" or "tensorflow"."""
    return runtime().name


class LiteRTRunner:
    """Runs a .tflite classifier through the LiteRT runtime (`runtime()`) on batches of feature arrays."""

    def __init__(self, path: str | os.PathLike[str], *, num_threads: int = 1) -> None:
        self.runtime = runtime()
        log.debug("%s: scoring with %s %s", path, self.runtime.name, self.runtime.version)
        try:
            with _quiet_native_stderr():
                self._interpreter = self.runtime.interpreter(
                    model_path=os.fspath(path), num_threads=num_threads
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a valid LiteRT model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.output_size = int(self._output["shape"][-1])
        self._batch: int | None = None
        self._per_call = 1 if int(np.prod(self.input_shape)) >= LARGE_INPUT else MAX_BATCH

    def _ensure_batch(self, n: int) -> None:
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [n, *self.input_shape])
            with _quiet_native_stderr():
                self._interpreter.allocate_tensors()
            self._batch = n

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Return class probabilities, shape (N, labels), for features of shape (N, *input_shape)."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        out = []
        for start in range(0, len(x), self._per_call):
            part = x[start : start + self._per_call]
            self._ensure_batch(len(part))
            self._interpreter.set_tensor(self._input["index"], part)
            self._interpreter.invoke()
            out.append(self._interpreter.get_tensor(self._output["index"]).copy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to fd 2 (LiteRT's "Created TensorFlow Lite XNNPACK
    delegate" line would otherwise land in every log); Python exceptions are unaffected."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class KerasRunner:
    """Calls a Keras model directly (no predict() overhead) on batches of feature arrays."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        self.output_size = int(model.output_shape[-1])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Return class probabilities, shape (N, labels)."""
        keras = require_keras("scoring with a Keras model")
        x = np.asarray(features, dtype=np.float32)
        out = [
            keras.ops.convert_to_numpy(self.model(x[s : s + MAX_BATCH], training=False))
            for s in range(0, len(x), MAX_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
