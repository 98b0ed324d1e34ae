"""Network builders for `Model(layers=...)`: the README dense network and a small logmel CNN.

Two model types, one per feature type:

- ``dense``: the original README network (one hidden layer) on ``spectrum`` features.
- ``cnn``: a small 2-D convolutional network on ``logmel`` features (frames x mel bands),
  under 100k parameters and well under a millisecond per window through LiteRT.

Builders return plain lists of Keras layers (Keras is imported inside the functions), so
``Model(cnn_layers(spec, len(labels)), labels, spec=spec)`` works as in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from micmon._deps import require_keras
from micmon.errors import ParameterError
from micmon.features import FeatureSpec

ModelType = Literal["dense", "cnn"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
#: The feature type each model type is built for.
FEATURE_FOR_MODEL: dict[str, str] = {"dense": "spectrum", "cnn": "logmel"}

#: Convolution filters per block of the CNN (three 3x3 blocks keep it under 30k parameters).
CNN_FILTERS: tuple[int, ...] = (16, 32, 48)
#: Batch-norm moving-average momentum: low, because a few recordings give few training steps
#: and Keras' 0.99 leaves the inference statistics far from the data after a short training.
CNN_BN_MOMENTUM = 0.9
#: Dropout before the CNN's output layer.
CNN_DROPOUT = 0.3
#: How the CNN summarises its last feature map: "average" over time and frequency, or "max" over
#: time of the frequency average (a short sound in a long window is not diluted by the rest).
Pooling = Literal["average", "max"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
CNN_POOLING: Pooling = "max"
#: What the CNN does to its log-mel input first: nothing ("log"), per-channel energy
#: normalisation ("pcen", `micmon.model.pcen`), or subtract the window's mean level ("relative",
#: `micmon.model.level`: the same input at any microphone gain), or that and the mean level as a
#: second channel ("relative+level").
Frontend = Literal["log", "pcen", "relative", "relative+level"]
FRONTENDS: tuple[str, ...] = get_args(Frontend)
CNN_FRONTEND: Frontend = "log"
#: Hidden layer widths of the README network, as multiples of the input width.
README_LAYER_FACTORS: tuple[float, ...] = (2.0, 0.75)


def _check_n_labels(n_labels: int) -> None:
    if not isinstance(n_labels, (int, np.integer)) or n_labels < 2:
        raise ParameterError(
            f"n_labels: a classifier needs at least 2 labels, got {n_labels!r}; "
            "label some windows of another class (e.g. 'negative')",
            parameter="n_labels",
            value=n_labels,
        )


def check_level_floor(level_floor: Any, frontend: str) -> None:
    """Raise ParameterError if a level floor is asked of a front end without a level channel."""
    if level_floor is not None and level_floor is not False and frontend != "relative+level":
        raise ParameterError(
            f"level_floor: only the relative+level front end has a level channel to floor, "
            f"the frontend is {frontend!r}",
            parameter="level_floor",
            value=level_floor,
        )


def dense_layers(spec: FeatureSpec, n_labels: int, *, hidden: Sequence[int] | None = None) -> list[Any]:
    """Return the README network: ReLU layers of 2x and 0.75x the input width (or `hidden`), softmax.

    Multi-dimensional inputs (logmel) are flattened first.
    """
    _check_n_labels(n_labels)
    layers = require_keras("dense_layers").layers
    width = int(np.prod(spec.shape))
    sizes = list(hidden) if hidden else [max(1, int(f * width)) for f in README_LAYER_FACTORS]
    out: list[Any] = [layers.Input(shape=spec.shape)]
    if len(spec.shape) > 1:
        out.append(layers.Flatten())
    out += [layers.Dense(n, activation="relu") for n in sizes]
    out.append(layers.Dense(n_labels, activation="softmax"))
    return out


def cnn_layers(
    spec: FeatureSpec,
    n_labels: int,
    *,
    filters: Sequence[int] = CNN_FILTERS,
    dropout: float = CNN_DROPOUT,
    pooling: str = CNN_POOLING,
    frontend: str = CNN_FRONTEND,
    level_floor: float | None = None,
) -> list[Any]:
    """Return a small 2-D CNN (frames x mel bands -> softmax) for `logmel` features.

    Each block is conv 3x3 -> batch norm -> ReLU -> 2x2 max pool; a global pool over what is
    left of time and frequency (`pooling`: "average", or "max" over time of the frequency
    average) feeds the softmax. `frontend` "pcen" puts a PCEN layer first (`micmon.model.pcen`),
    "relative" one that takes each window relative to its mean level (`micmon.model.level`),
    "relative+level" that and the window's mean level as a second input channel (the level no
    lower than `level_floor`, as the layer sees it, if given). Needs at least 2**len(filters)
    frames and mel bands.
    """
    _check_n_labels(n_labels)
    if spec.feature != "logmel":
        raise ParameterError(
            f"feature: the cnn model is built for 'logmel' features, the spec has "
            f"{spec.feature!r}; use model_type='dense' or feature='logmel'",
            parameter="feature",
        )
    if not filters or any(int(f) < 1 for f in filters):
        raise ParameterError(
            f"filters: expected positive filter counts, got {list(filters)!r}",
            parameter="filters",
            value=list(filters),
        )
    if not 0.0 <= dropout < 1.0:
        raise ParameterError(
            f"dropout: must be in [0, 1), got {dropout!r}", parameter="dropout", value=dropout
        )
    if pooling not in POOLINGS:
        raise ParameterError(
            f"pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}",
            parameter="pooling",
            value=pooling,
        )
    if frontend not in FRONTENDS:
        raise ParameterError(
            f"frontend: must be one of {', '.join(FRONTENDS)}, got {frontend!r}",
            parameter="frontend",
            value=frontend,
        )
    check_level_floor(level_floor, frontend)
    frames, bands = spec.shape
    smallest = 2 ** len(filters)
    if frames < smallest or bands < smallest:
        raise ParameterError(
            f"mel_bands/window: the cnn needs at least {smallest} frames and mel "
            f"bands, the spec gives {frames} frames x {bands} bands; use a longer "
            "window, a shorter frame hop or more mel bands",
            parameter="mel_bands/window",
        )
    layers = require_keras("cnn_layers").layers

    out: list[Any] = [layers.Input(shape=spec.shape)]
    if frontend == "pcen":
        from micmon.model.pcen import PCEN

        out.append(PCEN(spec.frame_hop_seconds))
    elif frontend == "relative":
        from micmon.model.level import RelativeLevel

        out.append(RelativeLevel())
    if frontend == "relative+level":
        from micmon.model.level import RelativeWithLevel

        out.append(RelativeWithLevel(level_floor))
    else:
        out.append(layers.Reshape((frames, bands, 1)))
    for n in filters:
        out += [
            layers.Conv2D(int(n), 3, padding="same", use_bias=False),
            layers.BatchNormalization(momentum=CNN_BN_MOMENTUM),
            layers.ReLU(),
            layers.MaxPooling2D(2),
        ]
    if pooling == "max":
        # (time, bands, channels) -> mean over the bands left -> max over time
        t, b = frames, bands
        for _ in filters:
            t, b = t // 2, b // 2
        out += [
            layers.AveragePooling2D(pool_size=(1, b)),
            layers.Reshape((t, int(filters[-1]))),
            layers.GlobalMaxPooling1D(),
        ]
    else:
        out.append(layers.GlobalAveragePooling2D())
    out += [
        layers.Dropout(dropout),
        layers.Dense(n_labels, activation="softmax"),
    ]
    return out


def build_layers(
    model_type: str, spec: FeatureSpec, n_labels: int, *, hidden: Sequence[int] | None = None
) -> list[Any]:
    """Return the layers of `model_type` ("dense" or "cnn") for `spec` and `n_labels` labels.

    `hidden` sets the dense network's hidden layer widths (default: the README network).
    """
    if model_type == "dense":
        return dense_layers(spec, n_labels, hidden=hidden)
    if model_type == "cnn":
        return cnn_layers(spec, n_labels)
    raise ParameterError(
        f"model_type: must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}",
        parameter="model_type",
        value=model_type,
    )


def model_type_for(spec: FeatureSpec) -> str:
    """Return the model type built for a feature spec: cnn for logmel, dense for spectrum."""
    return next(kind for kind, feature in FEATURE_FOR_MODEL.items() if feature == spec.feature)


def count_params(layers: list[Any]) -> int:
    """Return the number of trainable and non-trainable parameters of a layer list."""
    keras = require_keras("count_params")
    return int(keras.Sequential(layers).count_params())
