"""Shared fixtures: generated recordings, a tiny trained model, and TensorFlow kept quiet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from helpers import make_workspace  # noqa: E402


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with audio/ holding four labelled 40 s mp3 recordings (beeps = positive)."""
    root = tmp_path_factory.mktemp("workspace")
    make_workspace(root, recordings=4, seconds=40.0)
    return root


@pytest.fixture(scope="session")
def datasets_dir(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace's recordings as .npz datasets (2 s windows, 250-7500 Hz, 100 log bins)."""
    from micmon.audio import AudioDirectory, AudioFile
    from micmon.dataset import DatasetWriter

    out = tmp_path_factory.mktemp("datasets")
    for folder in AudioDirectory.scan(workspace / "audio"):
        with AudioFile(folder) as reader, DatasetWriter(out / f"{folder.name}.npz", 250, 7500) as w:
            for sample in reader:
                w += sample
    return out


@pytest.fixture(scope="session")
def trained_model_dir(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dense model trained on `datasets_dir` and saved with Model.save (keras + tflite)."""
    import keras

    from micmon.dataset import Dataset
    from micmon.model import Model

    keras.utils.set_random_seed(0)
    data = Dataset.combine(Dataset.scan(datasets_dir), validation_split=0.25)
    bins = data.samples.shape[1]
    model = Model(
        [
            keras.layers.Input(shape=(bins,)),
            keras.layers.Dense(2 * bins, activation="relu"),
            keras.layers.Dense(int(0.75 * bins), activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ],
        labels=data.labels,
        spec=data.spec,
    )
    model.fit(data, epochs=15)
    loss, accuracy = model.evaluate(data)
    out = tmp_path_factory.mktemp("model") / "sound-detect"
    model.save(out, metrics={"accuracy": accuracy, "loss": loss})
    return out
