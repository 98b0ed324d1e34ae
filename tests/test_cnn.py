"""micmon.model.cnn: layer builders, feature-domain augmentation, and a logmel CNN end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from micmon.errors import ParameterError
from micmon.features import FeatureSpec, compute_batch
from micmon.model.cnn import (
    augment,
    augment_dataset,
    build_layers,
    cnn_layers,
    count_params,
    dense_layers,
)

RATE = 16000
BEEP_HZ = 3000.0
LOGMEL = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, feature="logmel")
SPECTRUM = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, bins=50)
LABELS = ["negative", "positive"]


def windows(n: int, *, positive: bool, rng: np.random.Generator) -> np.ndarray:
    """Return n int16 one-second windows: noise + hum, with 3 kHz beeps when positive."""
    t = np.arange(RATE) / RATE
    out = []
    for _ in range(n):
        level = rng.uniform(0.01, 0.08)
        x = level * rng.standard_normal(RATE) + 0.02 * np.sin(2 * np.pi * 100 * t)
        if positive:
            gate = ((t + rng.uniform(0, 0.5)) % 0.5) < 0.25
            x += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * BEEP_HZ * t) * gate
        out.append((np.clip(x, -1, 1) * 32767).astype(np.int16))
    return np.stack(out)


# -- builders --------------------------------------------------------------------------------------
def test_cnn_is_small() -> None:
    assert count_params(cnn_layers(FeatureSpec(feature="logmel"), 2)) < 100_000
    assert count_params(cnn_layers(LOGMEL, 5)) < 100_000


def test_dense_is_the_readme_network() -> None:
    import keras

    model = keras.Sequential(dense_layers(SPECTRUM, 3))
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
    assert model.layers[0].units == 2 * SPECTRUM.bins
    assert model.output_shape == (None, 3)


def test_build_layers_checks_feature_and_type() -> None:
    with pytest.raises(ParameterError, match="'logmel' features"):
        build_layers("cnn", SPECTRUM, 2)
    with pytest.raises(ParameterError, match="'spectrum' features"):
        build_layers("dense", LOGMEL, 2)
    with pytest.raises(ParameterError, match="model_type: must be one of dense, cnn, got 'rnn'"):
        build_layers("rnn", LOGMEL, 2)
    with pytest.raises(ParameterError, match="n_labels: a classifier needs at least 2"):
        build_layers("cnn", LOGMEL, 1)
    with pytest.raises(ParameterError, match="at least 8 frames"):
        cnn_layers(LOGMEL.with_(mel_bands=4), 2)


# -- augmentation ----------------------------------------------------------------------------------
def test_augment_gain_shifts_log_features_and_keeps_labels() -> None:
    rng = np.random.default_rng(1)
    x = compute_batch(windows(4, positive=False, rng=rng), LOGMEL)
    y = np.zeros(4, dtype=np.int64)
    ax, ay = augment(x, y, spec=LOGMEL, background=[0], copies=2, gain_db=6.0,
                     mix_probability=0.0)
    assert ax.shape == (12, *LOGMEL.shape) and ay.tolist() == [0] * 12
    np.testing.assert_array_equal(ax[:4], x)
    shift = ax[4:8] - x  # a gain is a constant shift on the log scale, within +/- 6 dB
    assert np.allclose(shift, shift[:, :1, :1], atol=1e-4)
    assert np.all(np.abs(shift) <= 0.06 + 1e-6)


def test_augment_mixes_background_into_positives_only() -> None:
    rng = np.random.default_rng(2)
    x = compute_batch(np.concatenate([windows(3, positive=True, rng=rng),
                                      windows(3, positive=False, rng=rng)]), LOGMEL)
    y = np.array([1, 1, 1, 0, 0, 0])
    ax, _ = augment(x, y, spec=LOGMEL, background=[0], copies=1, gain_db=0.0,
                    mix_probability=1.0, mix_level_db=(0.0, 0.0))
    assert np.all(ax[6:9] >= x[:3] - 1e-5) and np.any(ax[6:9] > x[:3] + 1e-3)  # power added
    np.testing.assert_allclose(ax[9:], x[3:], atol=1e-5)  # background windows untouched


def test_augment_linear_scale_gain_is_a_factor() -> None:
    x = compute_batch(windows(2, positive=True, rng=np.random.default_rng(3)), SPECTRUM.with_(
        scale="linear"))
    ax, _ = augment(x, np.array([1, 1]), spec=SPECTRUM.with_(scale="linear"), background=[0],
                    mix_probability=0.0)
    ratio = ax[2:] / np.maximum(x, 1e-12)
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"copies": -1}, "copies: must be an integer >= 0"),
    ({"gain_db": -1.0}, "gain_db: must be >= 0"),
    ({"mix_probability": 1.5}, "mix_probability: must be in"),
    ({"mix_level_db": (5.0, -5.0)}, "mix_level_db"),
])
def test_augment_rejects_bad_options(kwargs: dict, message: str) -> None:
    x = np.zeros((2, *LOGMEL.shape), dtype=np.float32)
    with pytest.raises(ParameterError, match=message):
        augment(x, np.array([0, 1]), spec=LOGMEL, background=[0], **kwargs)


def test_augment_rejects_wrong_shapes() -> None:
    with pytest.raises(ParameterError, match="features: expected windows of shape"):
        augment(np.zeros((2, 7)), np.array([0, 1]), spec=LOGMEL, background=[0])
    with pytest.raises(ParameterError, match="classes: 1 classes for 2 windows"):
        augment(np.zeros((2, *LOGMEL.shape)), np.array([0]), spec=LOGMEL, background=[0])


# -- end to end: train, save, load with LiteRT -----------------------------------------------------
@pytest.mark.slow
def test_logmel_cnn_trains_and_round_trips_through_litert(tmp_path: Path) -> None:
    import keras

    from micmon.dataset import Dataset
    from micmon.model import Model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    audio = np.concatenate([windows(60, positive=True, rng=rng),
                            windows(100, positive=False, rng=rng)])
    classes = np.array([1] * 60 + [0] * 100)
    data = Dataset(compute_batch(audio, LOGMEL), classes, validation_split=0.25, labels=LABELS,
                   spec=LOGMEL)
    data = augment_dataset(data, copies=1)
    assert len(data.train_samples) == 2 * 120 and len(data.validation_samples) == 40
    model = Model(cnn_layers(LOGMEL, 2), LABELS, spec=LOGMEL)
    model.fit(data, epochs=8)
    assert model.evaluate(data)[1] >= 0.9

    test = np.concatenate([windows(10, positive=True, rng=rng),
                           windows(10, positive=False, rng=rng)])
    keras_scores = model.predict_proba(test)
    assert (keras_scores.argmax(axis=1) == [1] * 10 + [0] * 10).mean() >= 0.9

    model.save(tmp_path / "cnn")
    loaded = Model.load(tmp_path / "cnn")
    assert loaded.backend == "litert"
    assert loaded.spec == LOGMEL and loaded.labels == LABELS
    np.testing.assert_array_equal(compute_batch(test, loaded.spec), compute_batch(test, LOGMEL))
    np.testing.assert_allclose(loaded.predict_proba(test), keras_scores, atol=1e-4)
