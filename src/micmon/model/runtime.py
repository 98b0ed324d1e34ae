"""Scoring runtimes: LiteRT for saved models (no TensorFlow import) and Keras for live ones."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from micmon.errors import ModelError

#: Windows scored in one interpreter call; bounds memory for long files.
MAX_BATCH = 512


class LiteRTRunner:
    """Runs a .tflite classifier through ai-edge-litert on batches of feature arrays."""

    def __init__(self, path: str | os.PathLike[str], *, num_threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - depends on the install
            raise ModelError("LiteRT is not installed: pip install ai-edge-litert") from None
        try:
            with _quiet_native_stderr():
                self._interpreter = Interpreter(model_path=os.fspath(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a valid LiteRT model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.output_size = int(self._output["shape"][-1])
        self._batch: int | None = None

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
        for start in range(0, len(x), MAX_BATCH):
            part = x[start:start + MAX_BATCH]
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
        import keras

        x = np.asarray(features, dtype=np.float32)
        out = [keras.ops.convert_to_numpy(self.model(x[s:s + MAX_BATCH], training=False))
               for s in range(0, len(x), MAX_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
