"""`micmon train`: real (tiny) training, the validation report, plots, refusals and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from micmon.model.model import MODEL_FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_train_saves_a_model_with_its_validation_report(cli_model: Path) -> None:
    for name in MODEL_FILES:
        assert (cli_model / name).is_file(), name
    meta = json.loads((cli_model / "micmon.json").read_text())
    assert meta["labels"] == ["negative", "positive"]
    assert meta["spec"]["low_freq"] == 250 and meta["spec"]["high_freq"] == 7500
    metrics = meta["metrics"]
    assert set(metrics["per_label"]) == {"negative", "positive"}
    for values in metrics["per_label"].values():
        assert set(values) == {"precision", "recall", "f1", "support"}
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (2, 2)
    assert matrix.sum() == metrics["windows"] > 0
    assert metrics["accuracy"] == round(np.trace(matrix) / matrix.sum(), 4)
    assert metrics["accuracy"] >= 0.75  # beeps over noise are easy, even after 8 epochs
    # 8 epochs (early stopping may end them sooner), then 4 more on the hard negatives
    assert 4 < len(metrics["history"]["loss"]) <= 8 + 4
    assert meta["training"]["class_weight"] == "balanced"
    assert meta["training"]["model_type"] == "dense"


def test_train_shows_the_report_as_tables(cli_train_output: str) -> None:
    output = " ".join(cli_train_output.split())
    title = "validation (of the early-stopped network; the saved one was then fitted on every recording)"
    assert f"{title}: accuracy" in output
    assert "precision" in output and "recall" in output and "F1" in output
    assert "confusion matrix" in output
    assert "epoch 1/12: accuracy" in output  # 8 epochs, then 4 on the hard negatives


def test_plot_writes_png_files(cli_model: Path) -> None:
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert (cli_model / name).read_bytes()[:8] == PNG_MAGIC


def test_train_refuses_an_existing_model_without_force(
    invoke, assert_error, cli_model: Path, cli_data: Path
) -> None:
    before = (cli_model / "micmon.json").read_text()
    assert_error(
        invoke(["train", cli_data, cli_model, "--epochs", "1"]),
        str(cli_model),
        "already holds a model",
        "--force",
    )
    assert (cli_model / "micmon.json").read_text() == before


def test_train_cnn_on_logmel_with_options(invoke, cli_audio: Path, isolated: Path) -> None:
    data = isolated / "logmel"
    result = invoke(
        [
            "datagen",
            cli_audio,
            data,
            "--feature",
            "logmel",
            "--sample-rate",
            "16000",
            "--high",
            "7500",
            "--low",
            "250",
        ]
    )
    assert result.exit_code == 0, result.output
    model = isolated / "cnn"
    result = invoke(
        [
            "train",
            data,
            model,
            "--epochs",
            "2",
            "--no-class-weight",
            "--by-window",
            "--validation-split",
            "0.2",
            "--batch-size",
            "8",
            "--seed",
            "3",
        ]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "micmon.json").read_text())
    assert meta["training"]["model_type"] == "cnn"  # follows the datasets' feature type
    assert meta["training"]["class_weight"] == "none"
    assert meta["training"]["seed"] == 3
    assert meta["spec"]["feature"] == "logmel"


def test_train_errors(invoke, assert_error, cli_data: Path, isolated: Path) -> None:
    assert_error(invoke(["train", "no_such_data", "m"]), "no_such_data", "does not exist")
    (isolated / "empty").mkdir()
    assert_error(invoke(["train", "empty", "m"]), "empty", "no .npz datasets", "micmon datagen")
    assert_error(
        invoke(["train", cli_data, "m", "--labels", "negative,alarm"]),
        "'positive'",
        "not in the label list",
        "['negative', 'alarm']",
    )
    one = isolated / "one_label"
    one.mkdir()
    shutil.copy(cli_data / "sample_1.npz", one)
    assert_error(
        invoke(["train", one, "m", "--labels", "negative,positive,cat"]),
        "--labels",
        "cat",
        "occur in no dataset",
    )
    (isolated / "micmon.yaml").write_text("training:\n  frontend: log\n  level_floor: true\n")
    assert_error(
        invoke(["train", cli_data, "m"]),
        "micmon.yaml",
        "training.level_floor",
        "only the relative+level front end",
        "'log'",
    )
    assert not (isolated / "work" / "m").exists()


def test_train_refit_from_the_config(invoke, cli_data: Path, isolated: Path) -> None:
    (isolated / "micmon.yaml").write_text("training:\n  patience: 2\n  epochs: 3\n")  # refit: the default
    model = isolated / "refit"
    result = invoke(["train", cli_data, model])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "fitting again on all" in output
    assert "refit epoch 1/" in output  # the refit's own progress
    assert "validation (of the early-stopped network; the saved one was then fitted on every" in output
    meta = json.loads((model / "micmon.json").read_text())
    assert meta["training"]["refit"] is True
    (kept,) = meta["metrics"]["refit"]
    assert 1 <= kept[0] <= 3
