"""Model: a Keras classifier of feature vectors, saved with its labels and FeatureSpec."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from micmon import __version__
from micmon._deps import require_keras
from micmon._io import (
    check_writable_dir,
    expand_path,
    is_temp,
    link_or_copy,
    make_staging_dir,
    replace_dir,
    write_text_atomic,
)
from micmon.audio.segment import AudioSegment
from micmon.dataset import Dataset
from micmon.errors import ModelError, ParameterError
from micmon.features import DEFAULT_HIGH_FREQ, DEFAULT_LOW_FREQ, FeatureSpec, compute_batch
from micmon.model.runtime import KerasRunner, LiteRTRunner

log = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
META_FILE = "micmon.json"
MODEL_FILES = (KERAS_FILE, TFLITE_FILE, META_FILE)
FORMAT_VERSION = 1
#: Default windows per gradient step; small, because one recording holds few windows.
DEFAULT_BATCH_SIZE = 16
NORMALIZATION_LAYER = "micmon_standardize"


def _carry_over(old: Path, new: Path) -> None:
    """Link the files of model folder `old` that are not model files (plots, notes) into `new`."""
    for entry in old.iterdir():
        if entry.name in MODEL_FILES or is_temp(entry.name) or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), new / entry.name)
        else:
            link_or_copy(entry, new / entry.name)


def balanced_class_weights(classes: np.ndarray, n_labels: int) -> dict[int, float]:
    """Return weights that make every present class count as much as the others in the loss."""
    counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=n_labels)
    present = counts > 0
    total, k = counts.sum(), max(int(present.sum()), 1)
    return {i: float(total / (k * c)) if c else 1.0 for i, c in enumerate(counts)}


class Model:
    """A sound classifier: Keras layers, label names and the FeatureSpec its inputs come from."""

    def __init__(
        self,
        layers: Sequence[Any] | None = None,
        labels: Sequence[str] | None = None,
        low_freq: float = DEFAULT_LOW_FREQ,
        high_freq: float = DEFAULT_HIGH_FREQ,
        *,
        spec: FeatureSpec | None = None,
        optimizer: Any = "adam",
        loss: str = "sparse_categorical_crossentropy",
        metrics: Sequence[str] = ("accuracy",),
        keras_model: Any = None,
    ) -> None:
        if not labels:
            raise ParameterError(
                "labels: give the label names, e.g. ['negative', 'positive']", parameter="labels"
            )
        if len(set(labels)) != len(labels):
            raise ParameterError(
                f"labels: names must be unique, got {list(labels)}", parameter="labels", value=list(labels)
            )
        self.labels = [str(x) for x in labels]
        self.spec = spec
        self.low_freq = float(spec.low_freq if spec else low_freq)
        self.high_freq = float(spec.high_freq if spec else high_freq)
        self.metadata: dict[str, Any] = {}
        self._runner: LiteRTRunner | KerasRunner | None = None
        self.backend = "keras"
        if keras_model is None:
            if not layers:
                raise ParameterError(
                    "layers: give the network's Keras layers, input first", parameter="layers"
                )
            keras_model = _build(list(layers), optimizer=optimizer, loss=loss, metrics=list(metrics))
        self._keras = keras_model
        outputs = int(keras_model.output_shape[-1])
        if outputs != len(self.labels):
            raise ParameterError(
                f"labels: the network has {outputs} outputs but {len(self.labels)} "
                f"labels were given ({self.labels})",
                parameter="labels",
            )

    def __repr__(self) -> str:
        return f"Model(labels={self.labels}, backend={self.backend!r}, spec={self.spec})"

    @property
    def keras_model(self) -> Any:
        """The underlying Keras model (None when served from a .tflite file)."""
        return self._keras

    @property
    def runner(self) -> LiteRTRunner | KerasRunner:
        """The callable that turns features into probabilities."""
        if self._runner is None:
            self._runner = KerasRunner(self._keras)
        return self._runner

    # -- training -------------------------------------------------------------------------------
    def _adopt(self, dataset: Dataset) -> np.ndarray:
        """Check `dataset` fits this model; return its classes mapped onto the model's labels."""
        spec = dataset.spec or _original_spec(dataset)
        if self.spec is None:
            self.spec = spec
            self.low_freq, self.high_freq = spec.low_freq, spec.high_freq
        elif not spec.same_features(self.spec):
            raise ModelError(
                f"dataset {dataset.name or ''}: computed with different features than "
                "the model's; regenerate it with the model's settings"
            )
        if dataset.labels is None or dataset.labels == self.labels:
            return np.arange(len(self.labels))
        missing = [n for n in dataset.labels if n not in self.labels]
        if missing:
            raise ModelError(
                f"dataset {dataset.name or ''}: label(s) {missing} are not among the "
                f"model's labels {self.labels}"
            )
        return np.array([self.labels.index(n) for n in dataset.labels], dtype=np.int64)

    def fit(
        self,
        dataset: Dataset,
        epochs: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        class_weight: str | dict[int, float] | None = "balanced",
        verbose: int = 0,
        callbacks: Sequence[Any] | None = None,
        validation: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Train on the dataset's training windows and return the Keras History."""
        require_keras("Model.fit")
        if self._keras is None:
            raise ModelError(
                "this model was loaded from model.tflite and cannot be trained; "
                "load a folder with model.keras or build a new Model"
            )
        remap = self._adopt(dataset)
        x, y = dataset.train_samples, remap[dataset.train_classes]
        if len(x) == 0:
            raise ModelError(f"dataset {dataset.name or ''}: no training windows")
        _adapt_normalization(self._keras, x)
        weights = balanced_class_weights(y, len(self.labels)) if class_weight == "balanced" else class_weight
        if validation and len(dataset.validation_samples):
            kwargs["validation_data"] = (dataset.validation_samples, remap[dataset.validation_classes])
        return self._keras.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            class_weight=weights,
            verbose=verbose,
            callbacks=list(callbacks or []),
            **kwargs,
        )

    def evaluate(self, dataset: Dataset, **kwargs: Any) -> list[float]:
        """Return [loss, accuracy] on the validation windows (all windows if there are none)."""
        remap = self._adopt(dataset)
        if len(dataset.validation_samples):
            x, y = dataset.validation_samples, dataset.validation_classes
        else:
            x, y = dataset.samples, dataset.classes
        y = remap[y]
        if self._keras is not None:
            result = self._keras.evaluate(x, y, verbose=kwargs.pop("verbose", 0), **kwargs)
            return [float(v) for v in np.atleast_1d(result)]
        probs = self.scores(x)
        loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-7))))
        return [loss, float(np.mean(probs.argmax(axis=1) == y))]

    # -- prediction -----------------------------------------------------------------------------
    def scores(self, features: np.ndarray) -> np.ndarray:
        """Return probabilities (N, labels) for feature arrays of shape (N, *spec.shape)."""
        x = np.asarray(features, dtype=np.float32)
        expected = self.runner.input_shape
        if x.shape[1:] != expected:
            raise ModelError(
                f"features of shape {x.shape[1:]} do not fit the model's input "
                f"{expected}; compute them with the model's feature spec"
            )
        return self.runner(x)

    def _windows(self, samples: Sequence[AudioSegment] | np.ndarray) -> np.ndarray:
        spec = self._require_spec()
        if isinstance(samples, np.ndarray):
            width = spec.window_samples * spec.channels
            if samples.ndim == 1 and samples.size % width == 0:
                return samples.reshape(-1, width)
            if samples.ndim != 2:
                raise ModelError(
                    f"windows of shape {samples.shape} do not fit the model: it wants "
                    f"(N, {width}) samples ({spec.window_seconds:g} s at "
                    f"{spec.sample_rate} Hz x {spec.channels} channels)"
                )
            return samples
        for s in samples:
            if (s.sample_rate, s.channels) != (spec.sample_rate, spec.channels) or len(
                s.audio
            ) != spec.window_samples * spec.channels:
                raise ModelError(
                    f"window at {s.start:.3f} s is {s.duration:g} s at {s.sample_rate} Hz x "
                    f"{s.channels} channels; the model wants {spec.window_seconds:g} s at "
                    f"{spec.sample_rate} Hz x {spec.channels} (pass window_seconds="
                    f"{spec.window_seconds:g}, sample_rate={spec.sample_rate}, "
                    f"channels={spec.channels} to the audio source)"
                )
        if not samples:
            return np.zeros((0, spec.window_samples * spec.channels), dtype=np.int16)
        return np.stack([s.audio for s in samples])

    def predict_proba(self, samples: Sequence[AudioSegment] | np.ndarray) -> np.ndarray:
        """Return probabilities (N, labels) for windows (AudioSegments or int16 arrays (N, samples))."""
        windows = self._windows(samples)
        if len(windows) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.scores(compute_batch(windows, self._require_spec()))

    def predict(self, sample: AudioSegment) -> str:
        """Return the most likely label of one window."""
        return self.labels[int(self.predict_proba([sample])[0].argmax())]

    def _require_spec(self) -> FeatureSpec:
        if self.spec is None:
            raise ModelError("the model has no feature spec yet; fit it on a dataset first")
        return self.spec

    # -- saving and loading ---------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        metrics: dict[str, Any] | None = None,
        *,
        quantize: bool = False,
    ) -> None:
        """Write model.keras, model.tflite and micmon.json to folder `path`, replacing it as a whole.

        With `quantize` the .tflite stores its weights as int8 (dynamic range quantization): it
        scores ~3x faster on a CPU, and its scores differ from the Keras model's by about 0.01.

        The files are written to a hidden folder beside `path` that then takes its place in one
        step (other files of an existing model folder are carried over), so a reader sees the
        old model or the new one, never a mix. The folder gets the umask's permissions.
        """
        target = check_destination(path, overwrite=overwrite)
        if target.is_symlink():
            target = target.resolve()
        spec = self._require_spec()
        if metrics is not None:
            self.metadata["metrics"] = metrics
        meta = {
            **self.metadata,
            "format": FORMAT_VERSION,
            "micmon_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "labels": self.labels,
            "spec": spec.to_dict(),
            "low_freq": spec.low_freq,
            "high_freq": spec.high_freq,
            "input_shape": list(spec.shape),
        }
        staging = make_staging_dir(target)
        try:
            if self._keras is not None:
                self._keras.save(staging / KERAS_FILE)
                export_tflite(self._keras, staging / TFLITE_FILE, quantize=quantize)
                meta["tflite"] = {"quantized": bool(quantize)}
            else:
                source = Path(self.metadata.get("_path", ""))
                for name in (KERAS_FILE, TFLITE_FILE):
                    if (source / name).exists():
                        shutil.copy2(source / name, staging / name)
            meta.pop("_path", None)
            (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if target.is_dir():
                _carry_over(target, staging)
            replace_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, backend: str = "auto", num_threads: int = 1) -> Model:
        """Load a saved model; served by LiteRT (no TensorFlow) when model.tflite exists."""
        folder = expand_path(path)
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such model folder; train one first (micmon train)")
        meta = read_metadata(folder)
        if backend not in ("auto", "litert", "keras"):
            raise ParameterError(
                f"backend: must be auto, litert or keras, got {backend!r}", parameter="backend", value=backend
            )
        use_litert = backend == "litert" or (backend == "auto" and (folder / TFLITE_FILE).exists())
        if use_litert:
            if not (folder / TFLITE_FILE).exists():
                raise ModelError(
                    f"{folder}: no {TFLITE_FILE}; train the model again or load it with backend='keras'"
                )
            model = cls.__new__(cls)
            model._keras = None
            model._runner = LiteRTRunner(folder / TFLITE_FILE, num_threads=num_threads)
            model.backend = "litert"
        else:
            if not (folder / KERAS_FILE).exists():
                raise ModelError(
                    f"{folder}: no {KERAS_FILE} or {TFLITE_FILE}; the model folder "
                    "is incomplete, train it again"
                )
            keras = require_keras(f"loading {folder / KERAS_FILE}")
            import micmon.model.level  # noqa: F401  (registers the front-end layers a model may hold)
            import micmon.model.pcen  # noqa: F401

            try:
                keras_model = keras.models.load_model(folder / KERAS_FILE)
            except (ValueError, OSError) as exc:
                raise ModelError(f"{folder / KERAS_FILE}: cannot load it ({exc})") from None
            model = cls.__new__(cls)
            model._keras = keras_model
            model._runner = None
            model.backend = "keras"
        model.labels = [str(x) for x in meta["labels"]]
        model.spec = FeatureSpec.from_dict(meta["spec"])
        model.low_freq, model.high_freq = model.spec.low_freq, model.spec.high_freq
        model.metadata = {**meta, "_path": str(folder)}
        outputs = model.runner.output_size
        if outputs != len(model.labels):
            raise ModelError(
                f"{folder}: the network has {outputs} outputs but micmon.json lists "
                f"{len(model.labels)} labels"
            )
        return model

    @staticmethod
    def update_metadata(path: str | os.PathLike[str], **entries: Any) -> dict[str, Any]:
        """Merge `entries` into the model folder's micmon.json (atomically) and return it."""
        folder = expand_path(path)
        meta = read_metadata(folder)
        meta.update(entries)
        write_text_atomic(folder / META_FILE, json.dumps(meta, indent=2) + "\n")
        return meta


def check_destination(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Return the model folder `path` if a model can be saved there (its parent writable, no
    model in it unless `overwrite`); raise ModelError or OutputError otherwise.

    Call it before training: a bad model folder then fails in a second, not after the last epoch.
    """
    target = expand_path(path)
    if target.exists() and not target.is_dir():
        raise ModelError(f"{target}: exists and is not a folder; choose another model folder")
    existing = [n for n in MODEL_FILES if (target / n).exists()]
    if existing and not overwrite:
        raise ModelError(
            f"{target}: already holds a model ({', '.join(existing)}); pass "
            "overwrite=True (--force) to replace it, or choose another model folder"
        )
    check_writable_dir(target.parent, what="model folder's parent")
    return target


def read_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the parsed micmon.json of a model folder."""
    folder = expand_path(folder)
    meta_path = folder / META_FILE
    if not meta_path.exists():
        raise ModelError(
            f"{folder}: no model here ({META_FILE} is missing); train one with "
            "micmon train or point --model at a model folder"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        meta["labels"] = list(meta["labels"])
        FeatureSpec.from_dict(meta["spec"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{meta_path}: malformed ({exc}); train the model again") from None
    return meta


def _build(layers: list[Any], **compile_args: Any) -> Any:
    """Return a compiled Sequential of `layers`, standardising the inputs right after the Input."""
    keras = require_keras("building a Model")

    if layers and isinstance(layers[0], keras.KerasTensor):
        # Feature-wise standardisation, adapted on the first training data: band levels share a
        # large common offset, and a dense network learns slowly from un-centred inputs.
        layers = [layers[0], keras.layers.Normalization(axis=-1, name=NORMALIZATION_LAYER), *layers[1:]]
    model = keras.Sequential(layers)
    model.compile(**compile_args)
    return model


def _adapt_normalization(keras_model: Any, x: np.ndarray) -> None:
    """Adapt the input standardisation layer once, on the first data the model is fitted on."""
    try:
        layer = keras_model.get_layer(NORMALIZATION_LAYER)
    except ValueError:
        return
    weights = layer.get_weights()
    fresh = len(weights) >= 2 and not np.any(weights[0]) and np.all(weights[1] == 1)
    if fresh:
        layer.adapt(x)


def export_tflite(keras_model: Any, path: str | os.PathLike[str], *, quantize: bool = False) -> None:
    """Convert a Keras model to a LiteRT flatbuffer at `path` (int8 weights with `quantize`)."""
    options: dict[str, Any] = {}
    if quantize:
        import tensorflow as tf  # present whenever a Keras model is: it is Keras' backend

        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    # Keras' own LiteRT export; a converter fed a concrete function gave NaNs on Keras 3.
    with contextlib.redirect_stdout(io.StringIO()):
        keras_model.export(os.fspath(path), format="litert", **options)


def _original_spec(dataset: Dataset) -> FeatureSpec:
    """The spec of an original-format dataset: 44.1 kHz, 2 s windows, linear magnitudes."""
    bins = int(np.prod(dataset.samples.shape[1:])) if dataset.samples.ndim > 1 else 100
    return FeatureSpec(low_freq=dataset.low_freq, high_freq=dataset.high_freq, bins=bins, scale="linear")
