"""Network builders for `Model(layers=...)` and training-time augmentation on feature arrays.

Two model types, one per feature type:

- ``dense``: the original README network (one hidden layer) on ``spectrum`` features.
- ``cnn``: a small 2-D convolutional network on ``logmel`` features (frames x mel bands),
  under 100k parameters and well under a millisecond per window through LiteRT.

Builders return plain lists of Keras layers (Keras is imported inside the functions), so
``Model(cnn_layers(spec, len(labels)), labels, spec=spec)`` works as in the README.

`augment()` works on stored features rather than audio: both feature types are band power
densities, so a gain is a shift (log scale) or a factor (linear scale), and mixing a background
window into a positive one is a sum of powers (exact in expectation for uncorrelated sounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from micmon.errors import ParameterError
from micmon.features import FeatureSpec, from_power, to_power

ModelType = Literal["dense", "cnn"]
MODEL_TYPES: tuple[str, ...] = ("dense", "cnn")
#: The feature type each model type is built for.
FEATURE_FOR_MODEL: dict[str, str] = {"dense": "spectrum", "cnn": "logmel"}

#: Convolution filters per block of the CNN (three 3x3 blocks keep it under 30k parameters).
CNN_FILTERS: tuple[int, ...] = (16, 32, 48)
#: Batch-norm moving-average momentum: low, because a few recordings give few training steps
#: and Keras' 0.99 leaves the inference statistics far from the data after a short training.
CNN_BN_MOMENTUM = 0.9
#: Dropout before the CNN's output layer.
CNN_DROPOUT = 0.3
#: Width of the README dense network's hidden layer, as a multiple of the input width.
#: Hidden layer widths of the README network, as multiples of the input width.
README_LAYER_FACTORS: tuple[float, ...] = (2.0, 0.75)

#: Default augmentation: random gain range (+/- dB) ...
AUGMENT_GAIN_DB = 6.0
#: ... probability that a positive window gets a background window mixed in ...
AUGMENT_MIX_PROBABILITY = 0.5
#: ... at this level (dB, background relative to the positive window's own level).
AUGMENT_MIX_LEVEL_DB: tuple[float, float] = (-15.0, 5.0)


def _check_n_labels(n_labels: int) -> None:
    if not isinstance(n_labels, (int, np.integer)) or n_labels < 2:
        raise ParameterError(f"n_labels: a classifier needs at least 2 labels, got {n_labels!r}; "
                             "label some windows of another class (e.g. 'negative')")


def dense_layers(spec: FeatureSpec, n_labels: int, *,
                 hidden: Sequence[int] | None = None) -> list[Any]:
    """Return the README network: ReLU layers of 2x and 0.75x the input width (or `hidden`), softmax.

    Multi-dimensional inputs (logmel) are flattened first.
    """
    _check_n_labels(n_labels)
    from keras import layers

    width = int(np.prod(spec.shape))
    sizes = list(hidden) if hidden else [max(1, int(f * width)) for f in README_LAYER_FACTORS]
    out: list[Any] = [layers.Input(shape=spec.shape)]
    if len(spec.shape) > 1:
        out.append(layers.Flatten())
    out += [layers.Dense(n, activation="relu") for n in sizes]
    out.append(layers.Dense(n_labels, activation="softmax"))
    return out


def cnn_layers(spec: FeatureSpec, n_labels: int, *, filters: Sequence[int] = CNN_FILTERS,
               dropout: float = CNN_DROPOUT) -> list[Any]:
    """Return a small 2-D CNN (frames x mel bands -> softmax) for `logmel` features.

    Each block is conv 3x3 -> batch norm -> ReLU -> 2x2 max pool; a global average pool over
    what is left of time and frequency feeds the softmax. Needs at least 2**len(filters) frames
    and mel bands.
    """
    _check_n_labels(n_labels)
    if spec.feature != "logmel":
        raise ParameterError(f"feature: the cnn model is built for 'logmel' features, the spec has "
                             f"{spec.feature!r}; use model_type='dense' or feature='logmel'")
    if not filters or any(int(f) < 1 for f in filters):
        raise ParameterError(f"filters: expected positive filter counts, got {list(filters)!r}")
    if not 0.0 <= dropout < 1.0:
        raise ParameterError(f"dropout: must be in [0, 1), got {dropout!r}")
    frames, bands = spec.shape
    smallest = 2 ** len(filters)
    if frames < smallest or bands < smallest:
        raise ParameterError(f"mel_bands/window: the cnn needs at least {smallest} frames and mel "
                             f"bands, the spec gives {frames} frames x {bands} bands; use a longer "
                             "window, a shorter frame hop or more mel bands")
    from keras import layers

    out: list[Any] = [layers.Input(shape=spec.shape), layers.Reshape((frames, bands, 1))]
    for n in filters:
        out += [
            layers.Conv2D(int(n), 3, padding="same", use_bias=False),
            layers.BatchNormalization(momentum=CNN_BN_MOMENTUM),
            layers.ReLU(),
            layers.MaxPooling2D(2),
        ]
    out += [
        layers.GlobalAveragePooling2D(),
        layers.Dropout(dropout),
        layers.Dense(n_labels, activation="softmax"),
    ]
    return out


def build_layers(model_type: str, spec: FeatureSpec, n_labels: int) -> list[Any]:
    """Return the layers of `model_type` ("dense" or "cnn") for `spec` and `n_labels` labels."""
    if model_type == "dense":
        return dense_layers(spec, n_labels)
    if model_type == "cnn":
        return cnn_layers(spec, n_labels)
    raise ParameterError(f"model_type: must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")


# -- augmentation ---------------------------------------------------------------------------------
def augment(features: np.ndarray, classes: np.ndarray, *, spec: FeatureSpec,
            background: Sequence[int] | np.ndarray, rng: np.random.Generator | int | None = 0,
            copies: int = 1, gain_db: float = AUGMENT_GAIN_DB,
            mix_probability: float = AUGMENT_MIX_PROBABILITY,
            mix_level_db: tuple[float, float] = AUGMENT_MIX_LEVEL_DB,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return the windows plus `copies` augmented copies of each: random gain, background mixing.

    `features` has shape (N, *spec.shape) in `spec.scale`; `classes` holds one class index per
    window (shape (N,)) or one-hot rows (N, labels). Every copy gets a random gain of up to
    +/- `gain_db`; with probability `mix_probability` a copy of a window whose class is not in
    `background` gets a random background window mixed in, `mix_level_db` (low, high) relative
    to its own level. Labels are unchanged. Returns (features, classes), originals first.
    """
    x = np.asarray(features)
    y = np.asarray(classes)
    if x.shape[1:] != spec.shape:
        raise ParameterError(f"features: expected windows of shape {spec.shape} for this spec, "
                             f"got {x.shape[1:]}")
    if len(y) != len(x):
        raise ParameterError(f"classes: {len(y)} classes for {len(x)} windows; pass one per window")
    if not isinstance(copies, (int, np.integer)) or copies < 0:
        raise ParameterError(f"copies: must be an integer >= 0, got {copies!r}")
    if gain_db < 0:
        raise ParameterError(f"gain_db: must be >= 0, got {gain_db!r}")
    if not 0.0 <= mix_probability <= 1.0:
        raise ParameterError(f"mix_probability: must be in [0, 1], got {mix_probability!r}")
    low_db, high_db = mix_level_db
    if low_db > high_db:
        raise ParameterError(f"mix_level_db: (low, high) with low <= high, got {mix_level_db!r}")
    if copies == 0 or len(x) == 0:
        return x, y
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    index = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    is_background = np.isin(index, np.asarray(list(background), dtype=np.int64))
    background_rows = np.flatnonzero(is_background)

    power = to_power(x, spec.scale)
    reduce_axes = tuple(range(1, power.ndim))
    level = power.mean(axis=reduce_axes, keepdims=True)  # mean band power per window
    out_x, out_y = [x.astype(np.float32, copy=False)], [y]
    expand = (slice(None),) + (None,) * (power.ndim - 1)
    for _ in range(copies):
        p = power.copy()
        if background_rows.size:
            mix = (~is_background) & (gen.random(len(x)) < mix_probability)
            rows = np.flatnonzero(mix)
            if rows.size:
                picks = gen.choice(background_rows, size=rows.size)
                rel_db = gen.uniform(low_db, high_db, size=rows.size)
                bg_level = np.maximum(level[picks], 1e-300)
                factor = (level[rows] / bg_level) * (10.0 ** (rel_db / 10.0))[expand]
                p[rows] = p[rows] + power[picks] * factor
        gains = 10.0 ** (gen.uniform(-gain_db, gain_db, size=len(x)) / 10.0)
        p *= gains[expand]
        out_x.append(from_power(p, spec.scale))
        out_y.append(y)
    return np.concatenate(out_x), np.concatenate(out_y)


def count_params(layers: list[Any]) -> int:
    """Return the number of trainable and non-trainable parameters of a layer list."""
    import keras

    return int(keras.Sequential(layers).count_params())


def augment_dataset(dataset: Any, *, background_labels: Sequence[str] = ("negative",),
                    copies: int = 1, seed: int = 0, **options: Any) -> Any:
    """Return a Dataset whose training windows are augmented (see `augment`); validation unchanged.

    `background_labels` names the classes mixed into the others (labels not in the dataset are
    ignored); `options` go to `augment` (gain_db, mix_probability, mix_level_db).
    """
    from micmon.dataset import Dataset

    if dataset.spec is None:
        raise ParameterError("dataset: has no feature spec; regenerate it with micmon datagen")
    labels = list(dataset.labels or [])
    background = [labels.index(name) for name in background_labels if name in labels]
    x, y = augment(dataset.train_samples, dataset.train_classes, spec=dataset.spec,
                   background=background, rng=seed, copies=copies, **options)
    samples = np.concatenate([x, dataset.validation_samples])
    classes = np.concatenate([y, dataset.validation_classes])
    mask = np.zeros(len(samples), dtype=bool)
    mask[len(x):] = True
    return Dataset(samples, classes, spec=dataset.spec, labels=dataset.labels,
                   low_freq=dataset.low_freq, high_freq=dataset.high_freq, name=dataset.name,
                   validation_mask=mask)
