"""`micmon train`: fit the classifier on the datasets, report on held-out windows, save the model.

The only command that imports TensorFlow (through Keras), inside the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from micmon_cli import console
from micmon_cli.commands import Force, resolve

if TYPE_CHECKING:
    import numpy as np

PLOT_CURVES = "learning_curves.png"
PLOT_CONFUSION = "confusion_matrix.png"


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]
                          ) -> dict[str, Any]:
    """Return accuracy, per-label precision/recall/F1/support and the confusion matrix."""
    import numpy as np

    n = len(labels)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    per_label = {}
    for i, name in enumerate(labels):
        tp = int(matrix[i, i])
        predicted, actual = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {"precision": round(precision, 4), "recall": round(recall, 4),
                           "f1": round(f1, 4), "support": actual}
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix) / total) if total else 0.0
    return {"accuracy": round(accuracy, 4), "windows": total, "per_label": per_label,
            "confusion_matrix": matrix.tolist(), "labels": list(labels)}


def _show_report(report: dict[str, Any], title: str) -> None:
    labels = report["labels"]
    console.result(f"[bold]{title}[/bold]: accuracy {report['accuracy']:.3f} on "
                   f"{report['windows']} windows")
    console.result(console.table(
        "per label", ["label", "precision", "recall", "F1", "windows"],
        [(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", m["support"])
         for name, m in report["per_label"].items()],
        numeric=("precision", "recall", "F1", "windows")))
    console.result(console.table(
        "confusion matrix (rows: true label, columns: predicted)", ["true \\ predicted", *labels],
        [(name, *row) for name, row in zip(labels, report["confusion_matrix"], strict=True)],
        numeric=tuple(labels)))


def _plot(history: dict[str, list[float]], report: dict[str, Any], folder: Path) -> list[Path]:
    """Write the learning curves and the confusion matrix as PNG files in `folder`."""
    import numpy as np

    from micmon._plot import pyplot, save_png

    plt = pyplot(headless=True)

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style,
                        label="validation" if key.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    written.append(save_png(fig, folder / PLOT_CURVES, dpi=100))
    plt.close(fig)

    labels = report["labels"]
    matrix = np.asarray(report["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_title(f"accuracy {report['accuracy']:.3f}")
    written.append(save_png(fig, folder / PLOT_CONFUSION, dpi=100))
    plt.close(fig)
    return written


def train(
    datasets_dir: Annotated[Path | None, typer.Argument(
        help="Folder of .npz datasets (config: paths.datasets_dir).", show_default=False)] = None,
    model_dir: Annotated[Path | None, typer.Argument(
        help="Output model folder (config: paths.model_dir).", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", help="Training epochs "
                                               "(config: training.epochs).",
                                               show_default=False)] = None,
    validation_split: Annotated[float | None, typer.Option(
        "--validation-split", help="Share of windows held out for the report "
        "(config: training.validation_split).", show_default=False)] = None,
    by_recording: Annotated[bool | None, typer.Option(
        "--by-recording/--by-window", help="Hold out whole recordings (honest on unseen audio) "
        "or random windows (config: training.split_by_recording).", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Windows per training step (config: training.batch_size).",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed "
                                             "(config: training.seed).",
                                             show_default=False)] = None,
    model_type: Annotated[str | None, typer.Option(
        "--model-type", help="dense (README network, spectrum) or cnn (logmel) (default: the "
        "one that fits the datasets' features; config: training.model_type).",
        show_default=False)] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Comma-separated label list in class order (config: training.labels; "
        "default: every label in the datasets).", show_default=False)] = None,
    class_weight: Annotated[bool | None, typer.Option(
        "--class-weight/--no-class-weight", help="Weight classes by inverse frequency "
        "(config: training.class_weight).", show_default=False)] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Write learning curves and the confusion "
                                       "matrix as PNG files into the model folder.")] = False,
    holdout_recordings: Annotated[int | None, typer.Option(
        "--holdout-recordings", help="Keep N whole recordings out of training, to calibrate on "
        "with `micmon evaluate --calibrate` (config: training.holdout_recordings).",
        show_default=False)] = None,
    force: Force = False,
) -> None:
    """Train the sound classifier on the datasets and save it (Keras + LiteRT) to MODEL_DIR.

    Classes are weighted by default, since real recordings are imbalanced. After training, a
    validation report (accuracy, per-label precision/recall/F1, confusion matrix) is shown and
    stored in the model's micmon.json.

    Example: micmon train ~/sound/data ~/sound/model --epochs 20 --plot
    """
    import numpy as np

    from micmon.dataset import Dataset
    from micmon.errors import DatasetError, ModelError
    from micmon.model.model import MODEL_FILES, Model
    from micmon_cli.config import SOURCE_DEFAULT, Flag

    cfg = resolve(
        Flag("paths.datasets_dir", datasets_dir, "DATASETS_DIR"),
        Flag("paths.model_dir", model_dir, "MODEL_DIR"),
        Flag("training.epochs", epochs, "--epochs"),
        Flag("training.validation_split", validation_split, "--validation-split"),
        Flag("training.split_by_recording", by_recording, "--by-recording"),
        Flag("training.batch_size", batch_size, "--batch-size"),
        Flag("training.seed", seed, "--seed"),
        Flag("training.model_type", model_type, "--model-type"),
        Flag("training.labels", [x.strip() for x in labels.split(",") if x.strip()]
             if labels is not None else None, "--labels"),
        Flag("training.class_weight", None if class_weight is None
             else "balanced" if class_weight else "none", "--class-weight"),
        Flag("training.holdout_recordings", holdout_recordings, "--holdout-recordings"))
    t = cfg.config.training
    data_dir = cfg.existing_dir("paths.datasets_dir")
    out = cfg.config.paths.model_dir
    existing = [n for n in MODEL_FILES if (out / n).exists()]
    if existing and not force:
        raise ModelError(f"{out}: already holds a model ({', '.join(existing)}); use --force to "
                         "replace it, or choose another MODEL_DIR")
    Model.check_target(out, overwrite=force)  # a bad MODEL_DIR fails now, not after the last epoch

    datasets = Dataset.scan(data_dir, labels=t.labels or None, seed=t.seed)
    calibration_set: list[str] = []
    if t.holdout_recordings:
        from micmon.evaluate import holdout_recordings as split_holdout

        datasets, held = split_holdout(datasets, t.holdout_recordings, seed=t.seed)
        calibration_set = [str(d.name) for d in held]
        console.info(f"held out for calibration: {', '.join(calibration_set)}")
    label_names = datasets[0].labels or []
    spec = next((d.spec for d in datasets if d.spec is not None), None)
    if spec is None:
        raise DatasetError(f"{data_dir}: the datasets have no feature settings (original micmon "
                           "format); regenerate them with `micmon datagen --force`")
    data = Dataset.combine(datasets, t.validation_split, by_recording=t.split_by_recording,
                           seed=t.seed)
    counts = data.class_counts()
    present = [name for name, c in counts.items() if c]
    if len(present) < 2:
        raise DatasetError(f"{data_dir}: only the label(s) {present or '(none)'} occur in the "
                           "datasets; a classifier needs windows of at least two labels")
    if t.labels and (unused := [n for n in t.labels if not counts.get(n)]):
        raise DatasetError(f"{cfg.where('training.labels')}: label(s) {', '.join(unused)} occur "
                           f"in no dataset in {data_dir}; remove them from the label list or "
                           "record and label examples")
    if t.background_label not in label_names:
        console.warn(f"background label {t.background_label!r} is not among the labels "
                     f"{label_names}; set training.background_label")
    kind = t.model_type
    if cfg.source("training.model_type") == SOURCE_DEFAULT:
        kind = "cnn" if spec.feature == "logmel" else "dense"
    console.info(f"{len(datasets)} datasets, {len(data)} windows "
                 f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); "
                 f"{len(data.train_samples)} for training, {len(data.validation_samples)} held out"
                 f"{' by recording' if t.split_by_recording else ''}; model: {kind}")

    console.info("loading TensorFlow...")
    import os

    if not console.state.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from micmon.model.cnn import cnn_layers, dense_layers

    keras.utils.set_random_seed(t.seed)
    layers = (dense_layers(spec, len(label_names), hidden=t.layers) if kind == "dense"
              else cnn_layers(spec, len(label_names)))
    model = Model(layers, label_names, spec=spec)
    fit_data = data
    if kind == "cnn" and t.augment:
        fit_data = _augmented(data, spec, label_names, t.background_label, t.seed)

    history: dict[str, list[float]] = {}
    with console.progress() as bar:
        task = bar.add_task("training", total=t.epochs)

        class _Epochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                for key, value in logs.items():
                    history.setdefault(key, []).append(float(value))
                shown = "  ".join(f"{k} {v:.3f}" for k, v in logs.items())
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{t.epochs}  {shown}")
                if not console.interactive():  # logs and pipes get one line per epoch
                    console.info(f"epoch {epoch + 1}/{t.epochs}: {shown}")

        model.fit(fit_data, epochs=t.epochs, batch_size=t.batch_size,
                  class_weight="balanced" if t.class_weight == "balanced" else None,
                  callbacks=[_Epochs()], validation=len(data.validation_samples) > 0)

    held_out = len(data.validation_samples) > 0
    x, y = ((data.validation_samples, data.validation_classes) if held_out
            else (data.samples, data.classes))
    predicted = model.scores(x).argmax(axis=1)
    report = classification_report(np.asarray(y), predicted, label_names)
    report["split"] = ("recordings" if t.split_by_recording else "windows") if held_out \
        else "none (training windows)"
    if not held_out:
        console.warn("no windows held out (validation split 0): the report is on training "
                     "windows and says little about new audio")
    _show_report(report, "validation" if held_out else "training windows")

    model.metadata["training"] = {
        "model_type": kind, "epochs": t.epochs, "batch_size": t.batch_size, "seed": t.seed,
        "class_weight": t.class_weight, "validation_split": t.validation_split,
        "split_by_recording": t.split_by_recording, "augment": kind == "cnn" and t.augment,
        "datasets": [d.name for d in datasets], "class_counts": counts,
        "background_label": t.background_label, "holdout_recordings": calibration_set}
    model.save(out, overwrite=force, metrics={**report, "history": history})
    console.result(f"saved the model to {out}")
    if plot:
        for path in _plot(history, report, out):
            console.info(f"wrote {path}")
    console.info(f"next: micmon predict --model {out} some_recording.mp3")


def _augmented(data: Any, spec: Any, labels: list[str], background: str, seed: int) -> Any:
    """Return `data` with one augmented copy of each training window (gain, background mixing)."""
    import numpy as np

    from micmon.dataset import Dataset
    from micmon.model.cnn import augment

    bg = [labels.index(background)] if background in labels else []
    x, y = augment(data.train_samples, data.train_classes, spec=spec, background=bg, rng=seed)
    samples = np.concatenate([x, data.validation_samples])
    classes = np.concatenate([y, data.validation_classes])
    mask = np.r_[np.zeros(len(x), dtype=bool), np.ones(len(data.validation_samples), dtype=bool)]
    return Dataset(samples, classes, data.validation_split, spec.low_freq, spec.high_freq,
                   labels=labels, spec=spec, name=data.name, validation_mask=mask)
