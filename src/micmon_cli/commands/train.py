"""`micmon train`: fit the classifier on the datasets, report on held-out windows, save the model.

The only command that imports TensorFlow (through `micmon.training`), inside the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from micmon_cli import console
from micmon_cli.commands import Force, resolve
from micmon_cli.options import config_argument, config_option, split_list
from micmon_cli.reports import train_with_progress


def _class_weight(value: bool) -> str:
    return "balanced" if value else "none"


def train(
    datasets_dir: Annotated[
        Path | None, config_argument("paths.datasets_dir", "DATASETS_DIR", help="folder of .npz datasets")
    ] = None,
    model_dir: Annotated[
        Path | None, config_argument("paths.model_dir", "MODEL_DIR", help="output model folder")
    ] = None,
    epochs: Annotated[int | None, config_option("training.epochs", "--epochs", "-e")] = None,
    validation_split: Annotated[
        float | None, config_option("training.validation_split", "--validation-split")
    ] = None,
    by_recording: Annotated[
        bool | None,
        config_option(
            "training.split_by_recording",
            "--by-recording/--by-window",
            help="hold out whole recordings (honest on unseen audio) or random windows",
        ),
    ] = None,
    batch_size: Annotated[int | None, config_option("training.batch_size", "--batch-size")] = None,
    seed: Annotated[int | None, config_option("training.seed", "--seed")] = None,
    model_type: Annotated[str | None, config_option("training.model_type", "--model-type")] = None,
    labels: Annotated[
        str | None,
        config_option(
            "training.labels",
            "--labels",
            convert=split_list,
            help="comma-separated label list in class order; empty: every label in the datasets",
        ),
    ] = None,
    class_weight: Annotated[
        bool | None,
        config_option(
            "training.class_weight",
            "--class-weight/--no-class-weight",
            convert=_class_weight,
            help="weight classes by inverse frequency",
        ),
    ] = None,
    holdout_recordings: Annotated[
        int | None, config_option("training.holdout_recordings", "--holdout-recordings")
    ] = None,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot",
            help="Write learning curves and the confusion matrix as PNG files into the model folder.",
        ),
    ] = False,
    force: Force = False,
) -> None:
    """Train the sound classifier on the datasets and save it (Keras + LiteRT) to MODEL_DIR.

    Classes are weighted by default, since real recordings are imbalanced. After training, a
    validation report (accuracy, per-label precision/recall/F1, confusion matrix) is shown and
    stored in the model's micmon.json.

    Example: micmon train ~/sound/data ~/sound/model --epochs 20 --plot
    """
    from micmon.training import check_destination, training_options

    cfg = resolve()
    data_dir = cfg.existing_dir("paths.datasets_dir")
    out = check_destination(cfg.config.paths.model_dir, overwrite=force)
    with cfg.blame("training"):
        options = training_options(cfg.config.training.model_dump())
        result = train_with_progress(data_dir, options)
    result.save(out, overwrite=force)
    console.result(f"saved the model to {out}")
    if plot:
        from micmon.training import plot_training

        for path in plot_training(result, out):
            console.info(f"wrote {path}")
    console.info(f"next: micmon predict --model {out} some_recording.mp3")
