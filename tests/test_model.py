"""micmon.model with real Keras and real LiteRT: saving, loading without TensorFlow, agreement, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import background, beeps, make_recording
from micmon.audio import AudioDirectory, AudioFile, AudioSegment
from micmon.dataset import Dataset, DatasetWriter
from micmon.errors import MicmonError, ModelError, ParameterError
from micmon.features import FeatureSpec
from micmon.model import Model

#: Format of the small extra model: 1 s windows at 16 kHz, 50 bands (pitfall 11: bins != 100).
SMALL_RATE, SMALL_BINS = 16000, 50


def generated_windows(n: int, label: str, seed: int) -> list[AudioSegment]:
    """n one-second 16 kHz windows: household background, plus beeps when label is positive."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = background(1.0, SMALL_RATE, rng, level=float(rng.uniform(0.02, 0.08)))
        if label == "positive":
            x = x + beeps(1.0, SMALL_RATE, level=float(rng.uniform(0.2, 0.5)))
        pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
        out.append(AudioSegment(pcm, SMALL_RATE, label=label, start=float(i)))
    return out


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model on 50 log bands of 1 s 16 kHz windows, saved into a folder that does not exist yet."""
    import keras

    root = tmp_path_factory.mktemp("small")
    with DatasetWriter(root / "train.npz", 250, 7500, SMALL_BINS) as writer:
        for label, seed in (("negative", 1), ("positive", 2)):
            for w in generated_windows(40, label, seed):
                writer += w
    data = Dataset.load(root / "train.npz", validation_split=0.25)
    keras.utils.set_random_seed(0)
    model = Model(
        [
            keras.layers.Input(shape=(SMALL_BINS,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ],
        labels=data.labels,
        spec=data.spec,
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
    )
    model.fit(data, epochs=3, batch_size=4)
    target = root / "not" / "yet" / "small-model"  # pitfall 14: Model.save(dir) into a new folder
    model.save(target)
    return target


# -- the session's trained model -----------------------------------------------------------------------
def test_saved_folder_holds_keras_litert_and_metadata(trained_model_dir: Path) -> None:
    assert sorted(p.name for p in trained_model_dir.iterdir()) == [
        "micmon.json",
        "model.keras",
        "model.tflite",
    ]
    meta = json.loads((trained_model_dir / "micmon.json").read_text())
    assert meta["labels"] == ["negative", "positive"]
    spec = FeatureSpec.from_dict(meta["spec"])
    assert (spec.sample_rate, spec.window_seconds, spec.low_freq, spec.high_freq, spec.bins, spec.scale) == (
        44100,
        2.0,
        250,
        7500,
        100,
        "log",
    )
    assert meta["input_shape"] == [100]
    assert set(meta["metrics"]) == {"accuracy", "loss"}


def test_load_serves_through_litert(trained_model_dir: Path) -> None:
    model = Model.load(trained_model_dir)
    assert model.backend == "litert"
    assert model.keras_model is None
    assert model.labels == ["negative", "positive"]
    assert model.spec is not None and model.spec.bins == 100
    assert (model.low_freq, model.high_freq) == (250, 7500)
    assert Model.load(trained_model_dir, backend="keras").backend == "keras"


def test_loading_and_predicting_does_not_import_tensorflow(trained_model_dir: Path) -> None:
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from micmon.audio import AudioSegment
        from micmon.model import Model

        model = Model.load(sys.argv[1])
        window = AudioSegment(np.zeros(88200, dtype=np.int16), 44100)
        label = model.predict(window)
        proba = model.predict_proba([window, window])
        print(model.backend, label, proba.shape)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first, modules = result.stdout.strip().splitlines()[-2:]
    assert first.split()[0] == "litert"
    assert first.split()[1] in ("negative", "positive")
    assert modules == "[]", f"imported: {modules}"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[AudioSegment]:
    """Windows of a recording the model never saw (another seed, events at other times)."""
    folder = make_recording(
        tmp_path_factory.mktemp("held_out") / "rec", seconds=30.0, events=((6.0, 14.0), (20.0, 26.0)), seed=99
    )
    return list(AudioFile(AudioDirectory(folder)))


def test_litert_and_keras_agree(trained_model_dir: Path, held_out: list[AudioSegment]) -> None:
    litert = Model.load(trained_model_dir).predict_proba(held_out)
    keras_probs = Model.load(trained_model_dir, backend="keras").predict_proba(held_out)
    assert litert.shape == keras_probs.shape == (15, 2)
    assert np.abs(litert - keras_probs).max() < 1e-4


def test_predict_proba_returns_probabilities(trained_model_dir: Path, held_out: list[AudioSegment]) -> None:
    model = Model.load(trained_model_dir)
    probs = model.predict_proba(held_out)
    assert probs.shape == (len(held_out), 2)
    assert probs.dtype == np.float32
    assert (probs >= 0).all() and (probs <= 1).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Raw int16 windows give the same as AudioSegments, in a batch or flattened.
    raw = np.stack([w.audio for w in held_out])
    np.testing.assert_allclose(model.predict_proba(raw), probs, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(raw[:2].reshape(-1)), probs[:2], atol=1e-6)
    assert model.predict_proba([]).shape == (0, 2)


def test_accuracy_on_a_held_out_recording(trained_model_dir: Path, held_out: list[AudioSegment]) -> None:
    model = Model.load(trained_model_dir)
    truth = [w.label for w in held_out]
    assert truth.count("positive") == 7  # 4 windows in 6-14 s, 3 in 20-26 s
    predicted = [model.predict(w) for w in held_out]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    assert accuracy >= 0.9, list(zip(truth, predicted, strict=True))


def test_evaluate_with_litert(trained_model_dir: Path, datasets_dir: Path) -> None:
    data = Dataset.combine(Dataset.scan(datasets_dir))
    loss, accuracy = Model.load(trained_model_dir).evaluate(data)
    assert accuracy >= 0.9
    assert 0 <= loss < 1


@pytest.mark.parametrize("backend", ["litert", "keras"])
def test_evaluate_maps_dataset_labels_onto_the_model_labels(
    trained_model_dir: Path, datasets_dir: Path, backend: str
) -> None:
    full = Dataset.combine(Dataset.scan(datasets_dir))
    model = Model.load(trained_model_dir, backend=backend)
    positive = full.samples[full.classes == 1]
    # A dataset holding only "positive" numbers it 0; the model's index for it is 1 (pitfall 2).
    only_positive = Dataset(positive, np.zeros(len(positive)), labels=["positive"], spec=full.spec)
    assert model.evaluate(only_positive)[1] >= 0.9
    swapped = Dataset(full.samples, 1 - full.classes, labels=["positive", "negative"], spec=full.spec)
    assert model.evaluate(swapped)[1] >= 0.9


# -- saving ---------------------------------------------------------------------------------------------
def test_save_refuses_to_overwrite_and_works_with_overwrite(trained_model_dir: Path, tmp_path: Path) -> None:
    model = Model.load(trained_model_dir)
    copy = tmp_path / "copy"
    model.save(copy)  # a LiteRT-served model copies its files
    assert sorted(p.name for p in copy.iterdir()) == ["micmon.json", "model.keras", "model.tflite"]
    before = (copy / "micmon.json").read_text()
    with pytest.raises(
        ModelError,
        match=rf"^{copy}: already holds a model \(model.keras, "
        r"model.tflite, micmon.json\); pass overwrite=True",
    ):
        model.save(copy)
    assert (copy / "micmon.json").read_text() == before
    model.save(copy, overwrite=True, metrics={"accuracy": 0.5})
    meta = json.loads((copy / "micmon.json").read_text())
    assert meta["metrics"] == {"accuracy": 0.5}
    assert "_path" not in meta
    reloaded = Model.load(copy)
    window = AudioSegment(np.zeros(88200, dtype=np.int16), 44100)
    np.testing.assert_allclose(reloaded.predict_proba([window]), model.predict_proba([window]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no staging folder left


def test_a_loaded_model_saved_over_its_own_folder(trained_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained_model_dir, folder)
    window = AudioSegment(
        np.round(np.random.default_rng(0).standard_normal(88200) * 3000).astype(np.int16), 44100
    )
    model = Model.load(folder)
    before = model.predict_proba([window])
    model.save(folder, overwrite=True, metrics={"accuracy": 1.0})
    assert sorted(p.name for p in folder.iterdir()) == ["micmon.json", "model.keras", "model.tflite"]
    for name in ("model.keras", "model.tflite"):
        assert (folder / name).read_bytes() == (trained_model_dir / name).read_bytes()
    np.testing.assert_allclose(Model.load(folder).predict_proba([window]), before)


def test_save_onto_a_file_is_refused(trained_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="exists and is not a folder"):
        Model.load(trained_model_dir).save(tmp_path / "file")


# -- a model with another feature spec (pitfalls 11 and 14) ---------------------------------------------
def test_a_model_with_50_bins_predicts_correctly(small_model_dir: Path) -> None:
    assert sorted(p.name for p in small_model_dir.iterdir()) == ["micmon.json", "model.keras", "model.tflite"]
    meta = json.loads((small_model_dir / "micmon.json").read_text())
    assert meta["spec"]["bins"] == SMALL_BINS
    assert meta["spec"]["sample_rate"] == SMALL_RATE
    assert meta["spec"]["window_seconds"] == 1.0
    model = Model.load(small_model_dir)
    assert model.backend == "litert"
    assert model.spec is not None and model.spec.shape == (SMALL_BINS,)
    windows = generated_windows(10, "negative", 11) + generated_windows(10, "positive", 12)
    predicted = [model.predict(w) for w in windows]
    accuracy = np.mean([p == w.label for p, w in zip(predicted, windows, strict=True)])
    assert accuracy >= 0.9, predicted
    assert model.evaluate(Dataset.load(small_model_dir.parents[2] / "train.npz"))[1] >= 0.9


def test_a_model_without_tflite_falls_back_to_keras(small_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "keras-only"
    shutil.copytree(small_model_dir, folder)
    (folder / "model.tflite").unlink()
    model = Model.load(folder)
    assert model.backend == "keras"
    windows = generated_windows(4, "positive", 13)
    litert = Model.load(small_model_dir).predict_proba(windows)
    assert np.abs(model.predict_proba(windows) - litert).max() < 1e-4


def test_a_loaded_litert_model_cannot_be_trained(small_model_dir: Path) -> None:
    model = Model.load(small_model_dir)
    data = Dataset(np.zeros((2, SMALL_BINS)), np.array([0, 1]), labels=["negative", "positive"])
    with pytest.raises(ModelError, match="loaded from model.tflite and cannot be trained"):
        model.fit(data)


# -- errors ---------------------------------------------------------------------------------------------
def test_wrong_window_format_is_a_clear_model_error(trained_model_dir: Path) -> None:
    model = Model.load(trained_model_dir)
    window = AudioSegment(np.zeros(32000, dtype=np.int16), 16000)
    with pytest.raises(
        ModelError,
        match=r"window at 0.000 s is 2 s at 16000 Hz x 1 channels; the "
        r"model wants 2 s at 44100 Hz x 1 \(pass window_seconds=2, "
        r"sample_rate=44100, channels=1 to the audio source\)",
    ):
        model.predict(window)
    stereo = AudioSegment(np.zeros(2 * 88200, dtype=np.int16), 44100, channels=2)
    with pytest.raises(ModelError, match="44100 Hz x 2 channels"):
        model.predict_proba([stereo])
    with pytest.raises(ModelError, match=r"1 s at 44100 Hz"):
        model.predict(AudioSegment(np.zeros(44100, dtype=np.int16), 44100))


def test_wrong_feature_shape_is_a_model_error(trained_model_dir: Path) -> None:
    model = Model.load(trained_model_dir)
    with pytest.raises(
        ModelError,
        match=r"features of shape \(50,\) do not fit the model's input "
        r"\(100,\)",
    ):
        model.scores(np.zeros((3, 50)))


def test_raw_windows_of_the_wrong_length_are_a_micmon_error(trained_model_dir: Path) -> None:
    model = Model.load(trained_model_dir)
    with pytest.raises(MicmonError, match=r"got 44100 samples, the feature spec wants 88200"):
        model.predict_proba(np.zeros((2, 44100), dtype=np.int16))


def test_a_flat_array_that_is_not_whole_windows_is_a_model_error(trained_model_dir: Path) -> None:
    model = Model.load(trained_model_dir)
    with pytest.raises(ModelError):
        model.predict_proba(np.zeros(1000, dtype=np.int16))


def test_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError,
        match=rf"^{tmp_path}: no model here \(micmon.json is missing\); "
        r"train one",
    ):
        Model.load(tmp_path)
    with pytest.raises(ModelError, match=rf"^{tmp_path / 'missing'}: no such model folder"):
        Model.load(tmp_path / "missing")


def test_a_broken_model_folder(trained_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(trained_model_dir, folder)
    (folder / "micmon.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"micmon.json: malformed .*; train the model again"):
        Model.load(folder)
    (folder / "micmon.json").write_text(json.dumps({"labels": ["a", "b"]}))
    with pytest.raises(ModelError, match=r"micmon.json: malformed \('spec'\)"):
        Model.load(folder)
    shutil.copy(trained_model_dir / "micmon.json", folder / "micmon.json")
    (folder / "model.tflite").unlink()
    (folder / "model.keras").unlink()
    with pytest.raises(
        ModelError,
        match=r"no model.keras or model.tflite; the model folder is "
        r"incomplete",
    ):
        Model.load(folder)
    (folder / "model.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match=r"model.tflite: not a valid LiteRT model"):
        Model.load(folder)


def test_litert_load_checks_the_label_count(trained_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "three-labels"
    shutil.copytree(trained_model_dir, folder)
    meta = json.loads((folder / "micmon.json").read_text())
    meta["labels"] = ["negative", "positive", "other"]
    (folder / "micmon.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="the network has 2 outputs but micmon.json lists 3 labels"):
        Model.load(folder, backend="keras")
    with pytest.raises(ModelError, match="the network has 2 outputs but micmon.json lists 3 labels"):
        Model.load(folder)


def test_litert_backend_without_a_tflite_file(small_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "keras-only"
    shutil.copytree(small_model_dir, folder)
    (folder / "model.tflite").unlink()
    with pytest.raises(ModelError, match=r"model.tflite"):
        Model.load(folder, backend="litert")


def test_load_rejects_an_unknown_backend(trained_model_dir: Path) -> None:
    with pytest.raises(ParameterError, match=r"backend: must be auto, litert or keras, got 'onnx'"):
        Model.load(trained_model_dir, backend="onnx")


def test_constructor_checks() -> None:
    import keras

    layers = [keras.layers.Input(shape=(4,)), keras.layers.Dense(2, activation="softmax")]
    with pytest.raises(ParameterError, match="labels: give the label names"):
        Model(layers, labels=[])
    with pytest.raises(ParameterError, match=r"labels: names must be unique, got \['a', 'a'\]"):
        Model(layers, labels=["a", "a"])
    with pytest.raises(ParameterError, match=r"labels: the network has 2 outputs but 3 labels"):
        Model(layers, labels=["a", "b", "c"])
    with pytest.raises(ParameterError, match="layers: give the network's Keras layers"):
        Model([], labels=["a", "b"])
    unfitted = Model(layers, labels=["a", "b"])
    with pytest.raises(ModelError, match="no feature spec yet; fit it on a dataset first"):
        unfitted.predict(AudioSegment(np.zeros(100, dtype=np.int16), 16000))
    with pytest.raises(ModelError, match="no feature spec yet"):
        unfitted.save("/nonexistent/never-written")


def test_fit_refuses_a_dataset_of_other_features(small_model_dir: Path) -> None:
    model = Model.load(small_model_dir, backend="keras")
    other = Dataset(
        np.zeros((2, SMALL_BINS)),
        np.array([0, 1]),
        labels=["negative", "positive"],
        spec=FeatureSpec(
            sample_rate=SMALL_RATE, window_seconds=1.0, low_freq=100, high_freq=7500, bins=SMALL_BINS
        ),
    )
    with pytest.raises(ModelError, match="computed with different features than the model's"):
        model.fit(other)
    foreign = Dataset(
        np.zeros((2, SMALL_BINS)), np.array([0, 1]), labels=["negative", "cat"], spec=model.spec
    )
    with pytest.raises(ModelError, match=r"label\(s\) \['cat'\] are not among the model's labels"):
        model.fit(foreign)
