"""micmon.model.networks: layer builders, and a logmel CNN end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from micmon.errors import ParameterError
from micmon.features import FeatureSpec, compute_batch
from micmon.model.augment import augment_dataset
from micmon.model.networks import CNN_FILTERS, build_layers, cnn_layers, count_params, dense_layers

RATE = 16000
BEEP_HZ = 3000.0
LOGMEL = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, feature="logmel")
SPECTRUM = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, bins=50)
LABELS = ["negative", "positive"]


# -- builders --------------------------------------------------------------------------------------
def test_cnn_is_small() -> None:
    assert count_params(cnn_layers(FeatureSpec(feature="logmel"), 2)) < 100_000
    assert count_params(cnn_layers(LOGMEL, 5)) < 100_000


def test_dense_is_the_readme_network() -> None:
    import keras

    model = keras.Sequential(dense_layers(SPECTRUM, 3))
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense", "Dense"]
    assert model.layers[0].units == 2 * SPECTRUM.bins
    assert model.layers[1].units == int(0.75 * SPECTRUM.bins)
    assert model.output_shape == (None, 3)
    custom = keras.Sequential(dense_layers(SPECTRUM, 2, hidden=[16]))
    assert [layer.units for layer in custom.layers] == [16, 2]
    flat = keras.Sequential(dense_layers(LOGMEL, 2, hidden=[8]))  # logmel frames are flattened
    assert type(flat.layers[0]).__name__ == "Flatten"
    assert flat.layers[1].input.shape == (None, int(np.prod(LOGMEL.shape)))


def test_build_layers_checks_feature_and_type() -> None:
    with pytest.raises(ParameterError, match="'logmel' features"):
        build_layers("cnn", SPECTRUM, 2)
    with pytest.raises(ParameterError, match="model_type: must be one of dense, cnn, got 'rnn'"):
        build_layers("rnn", LOGMEL, 2)
    with pytest.raises(ParameterError, match="n_labels: a classifier needs at least 2"):
        build_layers("cnn", LOGMEL, 1)
    with pytest.raises(ParameterError, match="at least 8 frames"):
        cnn_layers(LOGMEL.with_(mel_bands=4), 2)


# -- end to end: datagen, train, save, load with LiteRT, predict -----------------------------------
@pytest.mark.slow
def test_logmel_cnn_trains_and_round_trips_through_litert(tmp_path: Path) -> None:
    import keras

    from helpers import make_recording
    from micmon.audio import AudioDirectory, AudioFile
    from micmon.dataset import Dataset, DatasetWriter
    from micmon.model import Model

    # datagen's path: recordings -> AudioFile windows -> DatasetWriter (.npz with the spec)
    for i, events in enumerate([((4.0, 14.0),), ((12.0, 22.0),)]):
        make_recording(
            tmp_path / "audio" / f"rec_{i}", seconds=30.0, events=events, rate=RATE, fmt="wav", seed=i
        )
    for folder in AudioDirectory.scan(tmp_path / "audio"):
        with (
            AudioFile(folder, sample_duration=1.0, sample_rate=RATE, hop=0.5) as source,
            DatasetWriter(tmp_path / "data" / f"{folder.name}.npz", spec=LOGMEL) as writer,
        ):
            for segment in source:
                writer += segment
    data = Dataset.combine(Dataset.scan(tmp_path / "data"), validation_split=0.2)
    assert data.spec == LOGMEL and data.labels == LABELS

    keras.utils.set_random_seed(0)
    data = augment_dataset(data, copies=1)
    model = Model(cnn_layers(LOGMEL, 2), LABELS, spec=LOGMEL)
    model.fit(data, epochs=8)
    assert model.evaluate(data)[1] >= 0.9

    # predict's path: the saved model, served by LiteRT, on the windows of a new recording
    model.save(tmp_path / "cnn")
    loaded = Model.load(tmp_path / "cnn")
    assert loaded.backend == "litert"
    assert loaded.spec == LOGMEL and loaded.labels == LABELS
    make_recording(tmp_path / "new", seconds=12.0, events=((4.0, 8.0),), rate=RATE, fmt="wav", seed=9)
    with AudioFile(AudioDirectory(tmp_path / "new"), sample_duration=1.0, sample_rate=RATE) as f:
        segments = list(f)
    windows = np.stack([s.audio for s in segments])
    stored = Dataset.load(tmp_path / "data" / "rec_0.npz")
    with AudioFile(
        AudioDirectory(tmp_path / "audio" / "rec_0"), sample_duration=1.0, sample_rate=RATE, hop=0.5
    ) as f:
        again = np.stack([s.audio for s in f])
    np.testing.assert_array_equal(compute_batch(again, loaded.spec), stored.samples)
    keras_scores = model.predict_proba(windows)
    np.testing.assert_allclose(loaded.predict_proba(segments), keras_scores, atol=1e-4)
    truth = [s.label == "positive" for s in segments]
    assert (keras_scores.argmax(axis=1) == np.array(truth, dtype=int)).mean() >= 0.8


def test_cnn_max_pooling_takes_the_loudest_moment_and_round_trips_through_litert(tmp_path: Path) -> None:
    import keras

    from micmon.model import Model

    keras.utils.set_random_seed(0)
    layers = cnn_layers(LOGMEL, 2, pooling="max")
    names = [type(layer).__name__ for layer in keras.Sequential(layers).layers]
    assert names[-4:] == ["Reshape", "GlobalMaxPooling1D", "Dropout", "Dense"]
    assert count_params(layers) == count_params(cnn_layers(LOGMEL, 2))  # pooling adds no weights
    with pytest.raises(ParameterError, match="pooling: must be one of average, max, got 'min'"):
        cnn_layers(LOGMEL, 2, pooling="min")

    model = Model(layers, LABELS, spec=LOGMEL)
    x = np.random.default_rng(0).normal(size=(6, *LOGMEL.shape)).astype(np.float32)
    model.save(tmp_path / "max")
    loaded = Model.load(tmp_path / "max")
    assert loaded.backend == "litert"
    np.testing.assert_allclose(loaded.scores(x), model.scores(x), atol=1e-4)


def _pcen_reference(window: np.ndarray, hop: float) -> np.ndarray:
    """PCEN of one log-scale (frames, bands) window by its textbook recursion, in float64."""
    from micmon.features import LOG_FLOOR_DB, LOG_RANGE_DB
    from micmon.model import pcen

    energy = 10.0 ** ((window.astype(np.float64) * LOG_RANGE_DB + LOG_FLOOR_DB - pcen.PCEN_REFERENCE_DB) / 10)
    s = 1.0 - np.exp(-hop / pcen.PCEN_TIME_CONSTANT)
    smooth = np.empty_like(energy)
    previous = energy[0]
    for t, frame in enumerate(energy):
        previous = (1 - s) * previous + s * frame
        smooth[t] = previous
    gain = (smooth + pcen.PCEN_EPSILON) ** -pcen.PCEN_ALPHA
    out: np.ndarray = (energy * gain + pcen.PCEN_DELTA) ** pcen.PCEN_ROOT - pcen.PCEN_DELTA**pcen.PCEN_ROOT
    return out


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved untrained
def test_pcen_frontend_normalises_each_band_and_round_trips_through_litert(tmp_path: Path) -> None:
    import keras

    from micmon.model import Model
    from micmon.model.pcen import PCEN

    rng = np.random.default_rng(3)
    windows = compute_batch(
        np.stack([(rng.standard_normal(RATE) * 3000 * (1 + i)).astype(np.int16) for i in range(3)]), LOGMEL
    )
    out = keras.ops.convert_to_numpy(PCEN(LOGMEL.frame_hop_seconds)(windows))
    for window, got in zip(windows, out, strict=True):
        np.testing.assert_allclose(
            got, _pcen_reference(window, LOGMEL.frame_hop_seconds), rtol=1e-3, atol=1e-4
        )
    # a gain is (almost) normalised away: 12 dB louder moves a log feature by 0.12, PCEN by ~1/50 of it
    louder = keras.ops.convert_to_numpy(PCEN(LOGMEL.frame_hop_seconds)(windows + 0.12))
    assert np.abs(louder - out).max() < 0.05 * np.abs(out).max()

    layers = cnn_layers(LOGMEL, 2, frontend="pcen")
    assert [type(layer).__name__ for layer in keras.Sequential(layers).layers][0] == "PCEN"
    assert count_params(layers) == count_params(cnn_layers(LOGMEL, 2))  # PCEN is fixed, no weights
    expected = r"frontend: must be one of log, pcen, relative, relative\+level, got 'mfcc'"
    with pytest.raises(ParameterError, match=expected):
        cnn_layers(LOGMEL, 2, frontend="mfcc")
    model = Model(layers, LABELS, spec=LOGMEL)
    model.save(tmp_path / "pcen")
    for backend in ("litert", "keras"):  # the .tflite carries PCEN; model.keras reloads its layer
        loaded = Model.load(tmp_path / "pcen", backend=backend)
        np.testing.assert_allclose(loaded.scores(windows), model.scores(windows), atol=1e-4)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved untrained
def test_relative_frontend_scores_a_sound_the_same_at_any_microphone_gain(tmp_path: Path) -> None:
    import keras

    from micmon.model import Model

    rng = np.random.default_rng(5)
    t = np.arange(RATE) / RATE
    sound = 0.02 * rng.standard_normal(RATE) + 0.05 * np.sin(2 * np.pi * BEEP_HZ * t) * (t > 0.4)
    # the same audio as recorded, 12 dB quieter and 12 dB louder, through the real front end
    gains = [1.0, 10 ** (-12 / 20), 10 ** (12 / 20)]
    windows = compute_batch(np.stack([(sound * g * 32767).astype(np.int16) for g in gains]), LOGMEL)
    assert abs(float(windows[2].mean() - windows[0].mean()) - 0.12) < 0.005  # log features did move
    layers = cnn_layers(LOGMEL, 2, frontend="relative")
    assert [type(layer).__name__ for layer in keras.Sequential(layers).layers][0] == "RelativeLevel"
    assert count_params(layers) == count_params(cnn_layers(LOGMEL, 2))  # no weights of its own
    model = Model(layers, LABELS, spec=LOGMEL)
    model.save(tmp_path / "relative")
    plain = Model(cnn_layers(LOGMEL, 2), LABELS, spec=LOGMEL).scores(windows)
    assert np.abs(plain[1:] - plain[0]).max() > 1e-3  # without it, the gain moves the scores
    for backend in ("litert", "keras"):  # the .tflite carries the layer; model.keras reloads it
        scores = Model.load(tmp_path / "relative", backend=backend).scores(windows)
        np.testing.assert_allclose(scores, model.scores(windows), atol=1e-4)
        np.testing.assert_allclose(scores[1:], np.broadcast_to(scores[0], scores[1:].shape), atol=2e-3)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved untrained
def test_relative_with_level_frontend_gives_the_shape_and_the_level_as_two_channels(tmp_path: Path) -> None:
    import keras

    from micmon.model import Model
    from micmon.model.level import RelativeWithLevel

    rng = np.random.default_rng(6)
    windows = rng.uniform(0.2, 0.6, size=(3, *LOGMEL.shape)).astype(np.float32)
    windows[1] = windows[0] - 0.12  # the first window 12 dB quieter
    channels = np.asarray(RelativeWithLevel()(windows))
    assert channels.shape == (3, *LOGMEL.shape, 2)
    np.testing.assert_allclose(channels[1, ..., 0], channels[0, ..., 0], atol=1e-6)  # same shape
    np.testing.assert_allclose(channels[0, ..., 1], windows[0].mean(), atol=1e-6)  # level everywhere
    np.testing.assert_allclose(channels[0, ..., 1] - channels[1, ..., 1], 0.12, atol=1e-6)
    layers = cnn_layers(LOGMEL, 2, frontend="relative+level")
    assert [type(layer).__name__ for layer in keras.Sequential(layers).layers][0] == "RelativeWithLevel"
    # the first convolution reads two channels: 3 x 3 x 16 more weights, nothing else
    assert count_params(layers) == count_params(cnn_layers(LOGMEL, 2)) + 3 * 3 * CNN_FILTERS[0]
    model = Model(layers, LABELS, spec=LOGMEL)
    model.save(tmp_path / "relative-level")
    scores = model.scores(windows)
    assert np.abs(scores[1] - scores[0]).max() > 1e-4  # the level reaches the network
    for backend in ("litert", "keras"):  # the .tflite carries the layer; model.keras reloads it
        loaded = Model.load(tmp_path / "relative-level", backend=backend)
        np.testing.assert_allclose(loaded.scores(windows), scores, atol=1e-4)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved untrained
def test_relative_with_level_floor_stops_the_level_channel_and_is_saved_with_the_network(
    tmp_path: Path,
) -> None:
    from micmon.model import Model
    from micmon.model.level import RelativeWithLevel

    rng = np.random.default_rng(7)
    windows = rng.uniform(0.2, 0.6, size=(3, *LOGMEL.shape)).astype(np.float32)
    windows[1] = windows[0] - 0.2  # 20 dB quieter, below the floor
    windows[2] = windows[0] - 0.3  # 30 dB quieter
    floor = float(windows[0].mean()) - 0.1
    channels = np.asarray(RelativeWithLevel(floor)(windows))
    np.testing.assert_allclose(channels[0, ..., 1], windows[0].mean(), atol=1e-6)  # above: as it is
    np.testing.assert_allclose(channels[1:, ..., 1], floor, atol=1e-6)  # below: the floor
    np.testing.assert_allclose(channels[2, ..., 0], channels[0, ..., 0], atol=1e-6)
    with pytest.raises(ParameterError, match="level_floor: only the relative\\+level front end"):
        cnn_layers(LOGMEL, 2, frontend="relative", level_floor=0.3)
    with pytest.raises(ParameterError, match="level_floor"):  # a floor of 0.0 is a floor too
        cnn_layers(LOGMEL, 2, frontend="log", level_floor=0.0)
    model = Model(cnn_layers(LOGMEL, 2, frontend="relative+level", level_floor=floor), LABELS, spec=LOGMEL)
    model.save(tmp_path / "floored")
    scores = model.scores(windows)
    np.testing.assert_allclose(scores[1], scores[2], atol=1e-5)  # below the floor, one input
    for backend in ("litert", "keras"):  # the floor travels in the .tflite and in model.keras
        loaded = Model.load(tmp_path / "floored", backend=backend)
        np.testing.assert_allclose(loaded.scores(windows), scores, atol=1e-4)
