"""Renderings several commands share: the training progress and its classification report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micmon_cli import console

if TYPE_CHECKING:
    from micmon.training import TrainingOptions, TrainingResult


def show_report(report: dict[str, Any], title: str) -> None:
    """Print a classification report: accuracy, per-label table, confusion matrix."""

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    labels = report["labels"]
    console.result(f"[bold]{title}[/bold]: accuracy {fmt(report['accuracy'])} on {report['windows']} windows")
    console.result(
        console.table(
            "per label",
            ["label", "precision", "recall", "F1", "windows"],
            [
                (name, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), m["support"])
                for name, m in report["per_label"].items()
            ],
            numeric=("precision", "recall", "F1", "windows"),
        )
    )
    console.result(
        console.table(
            "confusion matrix (rows: true label, columns: predicted)",
            ["true \\ predicted", *labels],
            [(name, *row) for name, row in zip(labels, report["confusion_matrix"], strict=True)],
            numeric=tuple(labels),
        )
    )


def train_with_progress(datasets: Any, options: TrainingOptions) -> TrainingResult:
    """Train with a progress bar (one line per epoch when not on a terminal); show the report."""
    from micmon.training import train as train_model

    with console.progress() as bar:
        epochs = sum(options.planned_epochs)
        task = bar.add_task("training", total=epochs)
        stage = {"name": "epoch", "total": epochs}

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            shown = "  ".join(f"{k} {v:.3f}" for k, v in logs.items())
            counted = f"{stage['name']} {epoch}/{stage['total']}"
            bar.update(task, advance=1, description=f"{counted}  {shown}")
            if not console.interactive():
                console.info(f"{counted}: {shown}")

        def on_refit(total: int) -> None:
            stage.update(name="refit epoch", total=total)
            bar.reset(task, total=total)

        result = train_model(datasets, options, on_epoch=on_epoch, on_message=console.info, on_refit=on_refit)
    for warning in result.warnings:
        console.warn(warning)
    held_out = not result.report["split"].startswith("none")
    title = "validation" if held_out else "training windows"
    if "refit" in result.report:
        title += " (of the early-stopped network; the saved one was then fitted on every recording)"
    show_report(result.report, title)
    return result
