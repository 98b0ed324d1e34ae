"""`micmon evaluate`: replay labelled recordings through the monitor's path and report event metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from micmon_cli import console
from micmon_cli.commands import FFmpeg, ModelDir, resolve
from micmon_cli.options import config_argument, config_option

if TYPE_CHECKING:
    from micmon.audio import AudioDirectory
    from micmon.batch import Batch
    from micmon.detect import DetectorSettings
    from micmon.evaluate import Calibration, CloseCall, EvaluationReport, RecordingScores, Remix
    from micmon_cli.config import ResolvedConfig


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _recording_table(report: EvaluationReport) -> Any:
    from micmon.evaluate import display_names

    rows = []
    names = [*display_names([r.scores for r in report.recordings]), "overall"]
    for r, name in zip([*report.recordings, None], names, strict=True):
        m = report.overall if r is None else r.metrics
        targets = [m.per_label()[t]["f1"] for t in m.targets]
        f1 = sum(v for v in targets if v is not None) / len(targets) if targets else None
        rows.append(
            [
                name,
                console.fmt_seconds(m.seconds),
                _fmt(m.window_accuracy),
                _fmt(f1),
                f"{m.found}/{m.runs}",
                _fmt(m.event_recall),
                m.false_alarms,
                _fmt(m.false_alarms_per_hour, ".1f"),
                _fmt(m.median_delay, ".1f", " s"),
                _fmt(m.worst_delay, ".1f", " s"),
            ]
        )
    columns = ["recording", "length", "acc", "F1", "found", "recall", "alarms", "alarms/h", "delay", "worst"]
    return console.table(
        f"Events of {', '.join(report.targets)} (hop {report.hop_seconds:g} s)",
        columns,
        rows,
        numeric=columns[1:],
    )


def _label_table(report: EvaluationReport) -> Any:
    rows = [
        [label, _fmt(d["precision"]), _fmt(d["recall"]), _fmt(d["f1"]), d["support"]]
        for label, d in report.overall.per_label().items()
    ]
    columns = ["label", "precision", "recall", "F1", "windows"]
    return console.table("Per window, all recordings", columns, rows, numeric=columns[1:])


def _tradeoff_table(cal: Calibration) -> Any:
    rows = [
        [
            ", ".join(f"{v:g}" for v in p.thresholds.values()),
            f"{p.k} of {p.n}",
            p.m,
            _fmt(p.event_recall),
            _fmt(p.false_alarms_per_hour, ".1f"),
            _fmt(p.median_delay, ".1f", " s"),
            "<- chosen" if p == cal.chosen else "",
        ]
        for p in cal.pareto()
    ]
    columns = ["threshold", "k of n", "m", "recall", "alarms/h", "median delay", ""]
    return console.table("Best recall at each false-alarm rate", columns, rows, numeric=columns[1:-1])


def evaluate(
    audio_dir: Annotated[
        Path | None,
        config_argument(
            "evaluate.audio_dir",
            "AUDIO_DIR",
            help="folder of labelled sample folders (audio.* + labels.json); empty: paths.audio_dir",
        ),
    ] = None,
    model_dir: ModelDir = None,
    hop: Annotated[float | None, config_option("evaluate.hop", "--hop")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    do_calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Search threshold, K of N and M for the best event recall within "
            "the false-alarm budget; store them in the model's micmon.json; then warn if "
            "a quiet room's hiss scores near a threshold.",
        ),
    ] = False,
    max_false_alarms_per_hour: Annotated[
        float | None, config_option("evaluate.max_false_alarms_per_hour", "--max-false-alarms-per-hour")
    ] = None,
    remix_background: Annotated[
        bool | None,
        config_option(
            "evaluate.remix_background",
            "--remix-background/--no-remix-background",
            help="with --calibrate: also calibrate on the background recordings remixed in pairs",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a score PNG per recording and a recall / false-alarm curve here.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    ffmpeg: FFmpeg = None,
) -> None:
    """Replay labelled recordings through the monitor's detector; report events found and false alarms.

    Each recording goes through exactly what `micmon monitor` runs live: windows every hop
    seconds, the model's scores, the detector. Reports window accuracy, per-label precision /
    recall / F1, event recall, false alarms per hour and detection delay. Calibrate on
    recordings the network was not trained on. After calibrating, the model also hears generated
    quiet-room hiss (a microphone at night); a sound scoring it within 0.1 of its threshold is
    warned about.

    Example: micmon evaluate ~/datasets/holdout --calibrate --max-false-alarms-per-hour 1
    """
    from micmon.detect import model_hop, model_settings
    from micmon.evaluate import (
        calibrate,
        close_calls,
        evaluate_scores,
        plot_report,
        quiet_room_scores,
        save_calibration,
    )
    from micmon.model import Model

    cfg = resolve()
    c = cfg.config
    model_path = cfg.existing_dir("paths.model_dir")
    model = Model.load(model_path)
    assert model.spec is not None
    settings = model_settings(
        model.metadata,
        list(model.labels),
        overrides=cfg.detector_overrides(),
        background_label=cfg.background_label(),
    )  # as `micmon monitor`
    window_hop = model_hop(model.metadata, model.spec.window_seconds, c.evaluate.hop or c.monitor.hop)
    folders = _folders(cfg, model.metadata, calibrating=do_calibrate)
    scored, batch = _score(folders, model, window_hop, c.audio.ffmpeg, calibrating=do_calibrate)
    calibration = None
    quiet: dict[str, float] = {}
    mixes: list[Remix] = []
    remixed: list[RecordingScores] = []
    if do_calibrate:
        _warn_if_trained_on(model.metadata, scored)
        budget = c.evaluate.max_false_alarms_per_hour
        if c.evaluate.remix_background:
            mixes, remixed = _remixed(scored, model, window_hop, c.audio.ffmpeg)
        calibration = calibrate(scored, max_false_alarms_per_hour=budget, base=settings, remixed=remixed)
        settings = calibration.settings
        save_calibration(model_path, calibration)
        _warn_about_budget(calibration)
        quiet = quiet_room_scores(model, settings)
        _warn_about_quiet_room(quiet, settings)
    report = evaluate_scores(scored, settings)
    plots = plot_report(report, plot, calibration=calibration) if plot is not None else []
    # the remixes' close calls too: with --remix-background they can hold the threshold up
    calls = close_calls(evaluate_scores([*scored, *remixed], settings) if remixed else report, remixes=mixes)
    if as_json:
        data = report.to_dict()
        data["model"] = str(model_path)
        data["close_calls"] = [call.to_dict() for call in calls]
        if calibration is not None:
            data["calibration"] = calibration.to_dict()
            data["quiet_room_top_scores"] = {label: round(top, 4) for label, top in quiet.items()}
        if plots:
            data["plots"] = [str(p) for p in plots]
        typer.echo(json.dumps(data, indent=2))
    else:
        _show(report, calibration, model_path, plots, calls)
    batch.finish()  # exit 1 if a recording could not be scored (it was reported)


def _folders(cfg: ResolvedConfig, metadata: dict[str, Any], *, calibrating: bool) -> list[AudioDirectory]:
    """Return the recordings to replay: AUDIO_DIR, else (calibrating) the held-out and
    background recordings, else paths.audio_dir."""
    from micmon.audio import AudioDirectory
    from micmon.errors import AudioError
    from micmon.evaluate import calibration_folders

    c = cfg.config
    if calibrating and c.evaluate.audio_dir is None:
        folders = calibration_folders(metadata, c.paths.audio_dir)
        if not folders:
            raise AudioError(
                f"{c.paths.audio_dir}: no recordings to calibrate on: the model "
                "kept none out (micmon train --holdout-recordings N) and no sample "
                "folder is labelled all background; record an hour of your room "
                "(micmon label room 00:00=negative) or pass AUDIO_DIR"
            )
        console.info(
            f"calibrating on {len(folders)} recording(s): the ones training held out "
            f"and the background recordings under {c.paths.audio_dir}"
        )
        return folders
    root = c.evaluate.audio_dir or c.paths.audio_dir
    folders = AudioDirectory.scan(root)
    if not folders:
        raise AudioError(
            f"{root}: no labelled sample folders (audio.* + labels.json) at or below "
            "it; pass AUDIO_DIR or set evaluate.audio_dir"
        )
    return folders


def _remixed(
    scored: list[RecordingScores], model: Any, hop: float, ffmpeg_bin: str
) -> tuple[list[Remix], list[RecordingScores]]:
    """Return the remixes of the background recordings among `scored`, and their scores; each
    mix is made in a scratch folder and removed once scored."""
    import shutil
    import tempfile

    from micmon.evaluate import background_labels, remix_background, score_recording

    background = background_labels(model.metadata)
    made: list[Remix] = []
    remixed: list[RecordingScores] = []
    with tempfile.TemporaryDirectory(prefix="micmon-remix-") as scratch, console.progress() as bar:
        task = bar.add_task("remixing the background recordings", total=None)
        mixes = remix_background(
            scored, scratch, sample_rate=model.spec.sample_rate, background=background, ffmpeg_bin=ffmpeg_bin
        )
        for mix in mixes:
            bar.update(task, description=f"scoring remix {len(remixed) + 1}")
            remixed.append(score_recording(mix.directory, model, hop=hop, ffmpeg_bin=ffmpeg_bin))
            made.append(mix)
            shutil.rmtree(mix.directory.path)
            bar.advance(task)
    if not remixed:  # said, not warned: the default, and the budget's warning gives the advice
        console.info(
            "no background recording to remix (label an hour of your room all "
            f"{background[0]}); calibrating on the recordings alone"
        )
    else:
        console.info(f"calibrating also on {len(remixed)} remix(es) of the background recordings")
    return made, remixed


def _warn_about_budget(calibration: Calibration) -> None:
    """Warn when the budget is not met, when the audio is too short to vouch for it, when a
    label's threshold rests on too few of its events, and when it is the highest tried."""
    from micmon.evaluate import MIN_CALIBRATION_EVENTS, hours_to_vouch

    thin = calibration.thin_labels
    if thin:
        console.warn(
            f"calibrated on fewer than {MIN_CALIBRATION_EVENTS} events of "
            + ", ".join(f"{label} ({n})" for label, n in thin.items())
            + ": a threshold set to find so few says little about new audio; calibrate on more "
            "labelled recordings with them"
        )

    topped = calibration.topped_labels
    if topped and calibration.met_budget:
        console.warn(
            "calibrated "
            + ", ".join(f"{label} at {calibration.settings.thresholds[label]:g}" for label in topped)
            + ", the highest threshold tried: something outside the labelled events scores nearly "
            "as high as they do, so quieter or new events will be missed; the close calls name it: "
            "record more of it, label it background and train again"
        )

    budget = calibration.max_false_alarms_per_hour
    if not calibration.met_budget:
        console.warn(
            f"no setting keeps false alarms within {budget:g} per hour on these "
            "recordings; stored the one with the fewest"
        )
    elif not calibration.vouched:
        hours = calibration.recorded_hours
        console.warn(
            f"{calibration.chosen.false_alarms} false alarms in {hours:.2g} h of recorded audio only "
            f"show fewer than {calibration.false_alarm_bound:.2g} per hour (95 % "
            f"confidence), not {budget:g}; record about {hours_to_vouch(budget):.1f} h of "
            "your room without the sound (label it all background) to vouch for it"
        )


def _warn_about_quiet_room(tops: dict[str, float], settings: DetectorSettings) -> None:
    """Warn about labels a quiet room at night (a microphone's own hiss) scores close to their threshold."""
    from micmon.evaluate import QUIET_ROOM_MARGIN, quiet_room_risks

    risky = quiet_room_risks(tops, settings)
    if risky:
        console.warn(
            "a quiet room (a microphone's own hiss, -85 to -45 dBFS) scores up to "
            + ", ".join(
                f"{top:.2f} for {label} (threshold {threshold:g})"
                for label, (top, threshold) in risky.items()
            )
            + f", within {QUIET_ROOM_MARGIN:g} of the threshold: expect false alarms at night; record your "
            "room while it is quiet, label it background and train again, or set monitor.min_dbfs"
        )


def _score(
    folders: list[AudioDirectory], model: Any, hop: float, ffmpeg_bin: str, *, calibrating: bool
) -> tuple[list[RecordingScores], Batch]:
    """Score every labelled recording, with a progress bar; a bad one is reported and the others
    go on (the command fails at the end), but calibration needs every recording."""
    from micmon.batch import Batch
    from micmon.evaluate import score_recording

    batch = Batch(what="recording", on_error=console.error, total=len(folders))
    scored = []
    with console.progress() as bar:
        task = bar.add_task("scoring", total=len(folders))
        for folder in folders:
            bar.update(task, description=f"scoring {folder.name}")
            with batch.item(folder.path):
                scored.append(score_recording(folder, model, hop=hop, ffmpeg_bin=ffmpeg_bin))
            bar.advance(task)
    if not scored or (batch.failed and calibrating):
        batch.finish()
    return scored, batch


def _warn_if_trained_on(metadata: dict[str, Any], scored: list[RecordingScores]) -> None:
    """Warn about recordings the network was fitted on: recordings with the sound (hold them out),
    and background recordings (trained on as negatives by design, but optimistic)."""
    from micmon.evaluate import background_labels, trained_on

    seen = set(trained_on(metadata, [r.path for r in scored]))
    background = set(background_labels(metadata))  # as calibration_folders finds them
    quiet = [r.path for r in scored if r.path in seen and all(run.label in background for run in r.runs)]
    events = [r.path for r in scored if r.path in seen and r.path not in quiet]

    def names(paths: list[str]) -> str:
        return ", ".join(Path(p).name for p in paths[:3]) + ("..." if len(paths) > 3 else "")

    if events:
        console.warn(
            f"calibrating on {len(events)} recording(s) with the sound the network was trained "
            f"on ({names(events)}); the settings will look better than they are. Hold "
            "recordings out with `micmon train --holdout-recordings N` or use a "
            "separate folder"
        )
    if quiet:
        console.warn(
            f"{len(quiet)} background recording(s) here were also trained on, as negatives "
            f"({names(quiet)}): the network scores audio it was fitted on lower than new audio, "
            "so expect more false alarms on new audio than calibration counts"
        )


def _show_close_calls(calls: list[CloseCall]) -> None:
    """Print the close calls that came within half their threshold, or say that none did."""
    from micmon.labels import format_time

    near = [call for call in calls if call.score >= call.threshold / 2]
    if not near:
        if calls:
            console.result(
                f"close calls: nothing outside the labelled events scored half its threshold "
                f"(highest {calls[0].score:.3f} for {calls[0].label})"
            )
        return
    rows = [
        [
            call.recording
            if call.mixed_with is None or call.mixed_at is None
            # two lines, not one folded at the terminal's width wherever it falls
            else f"{call.recording}\n+ {call.mixed_with} at {format_time(call.mixed_at)}",
            format_time(call.start),
            call.label,
            f"{call.score:.3f}",
            f"{call.threshold:g}",
            "yes" if call.alarm else "no",
        ]
        for call in near
    ]
    columns = ["recording", "at", "label", "score", "threshold", "false alarm"]
    title = "Close calls: highest scores outside the labelled events"
    console.result(console.table(title, columns, rows, numeric=columns[3:5]))
    console.result(
        "listen to them: label any that is the sound; record more of a lookalike, label it "
        "background and train again"
        + (
            ' (a row with "+ another at a time" is two background recordings remixed, heard '
            "together: listen to both)"
            if any(call.mixed_with is not None for call in near)
            else ""
        )
    )


def _show(
    report: EvaluationReport,
    calibration: Calibration | None,
    model_path: Path,
    plots: list[Path],
    calls: list[CloseCall],
) -> None:
    console.result(_recording_table(report))
    console.result(_label_table(report))
    _show_close_calls(calls)
    s = report.settings
    thresholds = ", ".join(f"{k}={v:g}" for k, v in s.thresholds.items()) or f"{s.threshold:g}"
    console.result(f"detector: threshold {thresholds}, {s.k} of {s.n} windows to start, {s.m} below to end")
    if calibration is not None:
        console.result(_tradeoff_table(calibration))
        console.result(f"saved the calibrated detector settings to {model_path / 'micmon.json'}")
    for path in plots:
        console.info(f"wrote {path}")
