"""`micmon evaluate`: replay labelled recordings through the monitor's path and report event metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, ModelDir, resolve

if TYPE_CHECKING:
    from micmon.evaluate import Calibration, EvaluationReport
    from micmon_cli.config import ResolvedConfig

def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def choose_hop(cfg: ResolvedConfig, metadata: dict[str, Any], window_seconds: float) -> float:
    """Return evaluate.hop, else the hop `micmon monitor` would use."""
    from micmon_cli.commands.monitor import choose_hop as monitor_hop

    hop = cfg.config.evaluate.hop
    return float(hop) if hop else monitor_hop(cfg, metadata, window_seconds)


def _recording_table(report: EvaluationReport) -> Any:
    from micmon.evaluate import display_names

    rows = []
    names = [*display_names([r.scores for r in report.recordings]), "overall"]
    for r, name in zip([*report.recordings, None], names, strict=True):
        m = report.overall if r is None else r.metrics
        targets = [m.per_label()[t]["f1"] for t in m.targets]
        f1 = sum(v for v in targets if v is not None) / len(targets) if targets else None
        rows.append([name, console.fmt_seconds(m.seconds), _fmt(m.window_accuracy),
                     _fmt(f1), f"{m.found}/{m.runs}", _fmt(m.event_recall), m.false_alarms,
                     _fmt(m.false_alarms_per_hour, ".1f"), _fmt(m.median_delay, ".1f", " s"),
                     _fmt(m.worst_delay, ".1f", " s")])
    columns = ["recording", "length", "acc", "F1", "found", "recall", "alarms", "alarms/h",
               "delay", "worst"]
    return console.table(f"Events of {', '.join(report.targets)} (hop {report.hop_seconds:g} s)",
                         columns, rows, numeric=columns[1:])


def _label_table(report: EvaluationReport) -> Any:
    rows = [[label, _fmt(d["precision"]), _fmt(d["recall"]), _fmt(d["f1"]), d["support"]]
            for label, d in report.overall.per_label().items()]
    columns = ["label", "precision", "recall", "F1", "windows"]
    return console.table("Per window, all recordings", columns, rows, numeric=columns[1:])


def _tradeoff_table(cal: Calibration) -> Any:
    rows = [[", ".join(f"{v:g}" for v in p.thresholds.values()), f"{p.k} of {p.n}", p.m,
             _fmt(p.event_recall), _fmt(p.false_alarms_per_hour, ".1f"),
             _fmt(p.median_delay, ".1f", " s"), "<- chosen" if p == cal.chosen else ""]
            for p in cal.pareto()]
    columns = ["threshold", "k of n", "m", "recall", "alarms/h", "median delay", ""]
    return console.table("Best recall at each false-alarm rate", columns, rows,
                         numeric=columns[1:-1])


def evaluate(
    audio_dir: Annotated[Path | None, typer.Argument(
        help="Folder of labelled sample folders (audio.* + labels.json) [config: "
             "evaluate.audio_dir, else paths.audio_dir].", show_default=False)] = None,
    model_dir: ModelDir = None,
    hop: Annotated[float | None, typer.Option(
        "--hop", help="Seconds between window starts [config: evaluate.hop, else monitor.hop, "
        "else a quarter of the window].", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    do_calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="Search threshold, K of N and M for the best event recall within "
        "the false-alarm budget; store them in the model's micmon.json.")] = False,
    max_false_alarms_per_hour: Annotated[float | None, typer.Option(
        "--max-false-alarms-per-hour", help="False-alarm budget for --calibrate [config: "
        "evaluate.max_false_alarms_per_hour].", show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write a score PNG per recording and a recall / false-alarm curve here.",
        file_okay=False, show_default=False)] = None,
    ffmpeg: FFmpeg = None,
) -> None:
    """Replay labelled recordings through the monitor's detector; report events found and false alarms.

    Each recording goes through exactly what `micmon monitor` runs live: windows every hop
    seconds, the model's scores, the detector. Reports window accuracy, per-label precision /
    recall / F1, event recall, false alarms per hour and detection delay. Calibrate on
    recordings the network was not trained on.

    Example: micmon evaluate ~/datasets/holdout --calibrate --max-false-alarms-per-hour 1
    """
    from micmon.audio import AudioDirectory
    from micmon.batch import Batch
    from micmon.errors import AudioError
    from micmon.evaluate import (
        calibrate,
        evaluate_scores,
        plot_report,
        save_calibration,
        score_recording,
        trained_on,
    )
    from micmon.model import Model
    from micmon_cli.commands.monitor import detector_settings
    from micmon_cli.config import Flag

    cfg = resolve(Flag("paths.model_dir", model_dir, "--model"),
                  Flag("evaluate.hop", hop, "--hop"),
                  Flag("evaluate.max_false_alarms_per_hour", max_false_alarms_per_hour,
                       "--max-false-alarms-per-hour"),
                  Flag("audio.ffmpeg", ffmpeg, "--ffmpeg"))
    c = cfg.config
    root = audio_dir or c.evaluate.audio_dir or c.paths.audio_dir
    model_path = cfg.existing_dir("paths.model_dir")
    model = Model.load(model_path)
    metadata = dict(model.metadata)
    assert model.spec is not None
    window_hop = choose_hop(cfg, metadata, model.spec.window_seconds)
    settings = detector_settings(cfg, metadata, list(model.labels))  # as `micmon monitor`

    folders = AudioDirectory.scan(root)
    if not folders:
        raise AudioError(f"{root}: no labelled sample folders (audio.* + labels.json) at or below "
                         "it; pass AUDIO_DIR or set evaluate.audio_dir")
    scored = []
    # A bad recording is reported and the others are still scored; exit 1 at the end.
    batch = Batch(what="recording", on_error=console.error, total=len(folders))
    with console.progress() as bar:
        task = bar.add_task("scoring", total=len(folders))
        for folder in folders:
            bar.update(task, description=f"scoring {folder.name}")
            with batch.item(folder.path):
                scored.append(score_recording(folder, model, hop=window_hop,
                                              ffmpeg_bin=c.audio.ffmpeg))
            bar.advance(task)
    if not scored or (batch.failed and do_calibrate):
        batch.finish()  # nothing to report on; never calibrate on part of the recordings

    calibration = None
    if do_calibrate:
        seen = trained_on(metadata, [r.path for r in scored])
        if seen:
            shown = ", ".join(Path(p).name for p in seen[:3]) + ("..." if len(seen) > 3 else "")
            console.warn(f"calibrating on {len(seen)} recording(s) the network was trained on "
                         f"({shown}); the settings will look better than they are. Hold "
                         "recordings out with `micmon train --holdout-recordings N` or use a "
                         "separate folder")
        budget = c.evaluate.max_false_alarms_per_hour
        calibration = calibrate(scored, max_false_alarms_per_hour=budget, base=settings)
        settings = calibration.settings
        save_calibration(model_path, calibration)
        if not calibration.met_budget:
            console.warn(f"no setting keeps false alarms within {budget:g} per hour on these "
                         "recordings; stored the one with the fewest")
    report = evaluate_scores(scored, settings)
    plots = plot_report(report, plot, calibration=calibration) if plot is not None else []

    if as_json:
        data = report.to_dict()
        data["model"] = str(model_path)
        if calibration is not None:
            data["calibration"] = calibration.to_dict()
        if plots:
            data["plots"] = [str(p) for p in plots]
        typer.echo(json.dumps(data, indent=2))
        batch.finish()
        return
    console.result(_recording_table(report))
    console.result(_label_table(report))
    s = settings
    thresholds = ", ".join(f"{k}={v:g}" for k, v in s.thresholds.items()) or f"{s.threshold:g}"
    console.result(f"detector: threshold {thresholds}, {s.k} of {s.n} windows to start, "
                   f"{s.m} below to end")
    if calibration is not None:
        console.result(_tradeoff_table(calibration))
        console.result(f"saved the calibrated detector settings to {model_path / 'micmon.json'}")
    for path in plots:
        console.info(f"wrote {path}")
    batch.finish()
