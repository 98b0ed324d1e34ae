"""The original README's scripts (examples/) run unchanged, apart from paths, on generated recordings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import make_recording

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.slow


def run_example(
    name: str, home: Path, replace: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run examples/<name> with HOME=home (so `~/...` paths land in it), after replacing strings."""
    source = (EXAMPLES / name).read_text()
    for old, new in (replace or {}).items():
        assert old in source, f"{old!r} not in {name}"
        source = source.replace(old, new)
    script = home / name
    script.write_text(source)
    env = {
        **os.environ,
        "HOME": str(home),
        "MPLBACKEND": "Agg",
        "SDL_AUDIODRIVER": "dummy",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME holding ~/datasets/sound-detect/audio/sample_1: a labelled 4-minute mp3."""
    home = tmp_path_factory.mktemp("home")
    events = [(20.0, 45.0), (70.0, 82.0), (100.0, 130.0), (150.0, 160.0), (190.0, 220.0)]
    make_recording(home / "datasets/sound-detect/audio/sample_1", seconds=240.0, events=events, seed=7)
    (home / "datasets/sound-detect/data").mkdir(parents=True)
    (home / "models").mkdir()
    return home


@pytest.fixture(scope="module")
def trained_home(home: Path) -> Path:
    """`home` after the README's dataset-generation and training scripts have run."""
    run_example("generate_dataset.py", home)
    result = run_example("train.py", home)
    accuracies = [float(a) for a in re.findall(r"loss and accuracy: \[[^,]+, ([0-9.]+)\]", result.stdout)]
    assert len(accuracies) == 2  # 2 epochs x 1 dataset
    home.joinpath("train.log").write_text(result.stdout)
    return home


def test_generate_dataset_writes_npz_with_labels_and_spec(trained_home: Path) -> None:
    data = np.load(trained_home / "datasets/sound-detect/data/sample_1.npz")
    assert set(data.files) >= {"samples", "classes", "cutoff_frequencies", "labels", "spec"}
    assert data["samples"].shape == (120, 100)
    assert list(data["labels"]) == ["negative", "positive"]
    assert list(data["cutoff_frequencies"]) == [250, 7500]
    positives = int(np.sum(data["classes"] == 1))
    # Windows are [2k, 2k+2): 20-45 s covers 12 windows plus 44-46 s, a tie that goes to the
    # earlier label; 70-82, 100-130, 150-160 and 190-220 s cover 6, 15, 5 and 15 windows.
    assert positives == 13 + 6 + 15 + 5 + 15


def test_train_reaches_95_percent_validation_accuracy(trained_home: Path) -> None:
    log = trained_home.joinpath("train.log").read_text()
    final = float(re.findall(r"loss and accuracy: \[[^,]+, ([0-9.]+)\]", log)[-1])
    assert final >= 0.95, log
    model_dir = trained_home / "models/sound-detect"
    assert {p.name for p in model_dir.iterdir()} >= {"model.keras", "model.tflite", "micmon.json"}


def test_predict_from_file_prints_a_line_per_window(trained_home: Path) -> None:
    audio = trained_home / "datasets/sound-detect/audio/sample_1/audio.mp3"
    result = run_example("predict_file.py", trained_home, {"/path/to/some/audio.mp3": str(audio)})
    lines = re.findall(r"Audio segment at (\d+) seconds: (\w+)", result.stdout)
    assert len(lines) == (240 - 60) // 2
    assert [int(t) for t, _ in lines] == list(range(60, 240, 2))
    predicted = {int(t): label for t, label in lines}
    # Windows fully inside an event are positive, windows far from any event negative.
    assert predicted[110] == "positive" and predicted[200] == "positive"
    assert predicted[90] == "negative" and predicted[236] == "negative"
    agree = sum(
        label
        == (
            "positive"
            if any(a <= t + 1 < b for a, b in [(70, 82), (100, 130), (150, 160), (190, 220)])
            else "negative"
        )
        for t, label in predicted.items()
    )
    assert agree / len(predicted) >= 0.9


def test_predict_from_microphone_classifies_live_windows(trained_home: Path) -> None:
    result = run_example(
        "predict_microphone.py",
        trained_home,
        {"'alsa'": "'lavfi'", "'plughw:1,0'": "'sine=frequency=3000:duration=10:sample_rate=44100'"},
    )
    lines = result.stdout.split()
    assert len(lines) == 5
    assert set(lines) <= {"negative", "positive"}
