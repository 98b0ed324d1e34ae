"""`micmon monitor`: listen live (or replay a file) and act on the sounds the model knows."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from micmon_cli import console
from micmon_cli.commands import resolve
from micmon_cli.options import config_option

if TYPE_CHECKING:
    from micmon.actions import Action
    from micmon.detect import DetectorSettings, Event
    from micmon.monitor import Monitor, MonitorStats, WindowResult
    from micmon.web import WebServer
    from micmon_cli.config import ResolvedConfig

#: Refreshes per second of the live view.
LIVE_REFRESH = 4
BAR_WIDTH = 30
#: Help panels of the monitor's options.
INPUT, DETECTOR, OUTPUT = "Input", "Detector", "Output"


def build_actions(cfg: ResolvedConfig, labels: list[str]) -> list[Action]:
    """Turn monitor.actions into library actions (raising ConfigError naming the entry)."""
    from micmon.actions import ClipAction, CommandAction, MqttAction, WebhookAction
    from micmon.errors import ParameterError
    from micmon_cli.config import ConfigError

    base = cfg.file.parent if cfg.file is not None else Path.cwd()
    actions: list[Action] = []
    for i, spec in enumerate(cfg.config.monitor.actions):
        where = f"{cfg.where('monitor.actions')}[{i}] ({spec.type})"
        try:
            action: Action
            if spec.type == "command":
                argv = shlex.split(spec.command) if isinstance(spec.command, str) else spec.command
                action = CommandAction(argv, timeout=spec.timeout, events=spec.events)
            elif spec.type == "webhook":
                action = WebhookAction(
                    spec.url, timeout=spec.timeout, headers=spec.headers, events=spec.events
                )
            elif spec.type == "mqtt":
                action = MqttAction(
                    spec.broker,
                    labels=labels,
                    topic=spec.topic,
                    node_id=spec.node_id,
                    username=spec.username,
                    password=spec.password,
                    tls=spec.tls,
                    ca_certs=spec.ca_certs,
                    tls_insecure=spec.tls_insecure,
                    client_id=spec.client_id,
                    discovery=spec.discovery,
                    discovery_prefix=spec.discovery_prefix,
                )
            else:
                folder = spec.folder if spec.folder.is_absolute() else base / spec.folder
                action = ClipAction(
                    folder,
                    format=spec.format,
                    pre_roll=spec.pre_roll,
                    post_roll=spec.post_roll,
                    max_seconds=spec.max_seconds,
                )
        except ParameterError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        action.retries = spec.retries
        actions.append(action)
    return actions


# -- display -------------------------------------------------------------------------------------
class LiveView:
    """Rich live view on stderr: current label and confidence bar, input level, last events."""

    def __init__(self, monitor: Monitor, source: str) -> None:
        from rich.live import Live

        self.monitor = monitor
        self.source = source
        self.last: WindowResult | None = None
        self.live = Live(
            self._render(), console=console.err, refresh_per_second=LIVE_REFRESH, transient=False
        )

    def on_window(self, result: WindowResult) -> None:
        """Remember the newest window (rendered at the next refresh)."""
        self.last = result
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", style="bold")
        grid.add_column()
        stats = self.monitor.stats
        state = "[green]listening[/green]" if stats.connected else "[yellow]waiting for audio[/yellow]"
        grid.add_row(
            "input", Text.from_markup(f"{self.source}  {state}  {console.fmt_seconds(stats.audio_seconds)}")
        )
        r = self.last
        level = r.level_dbfs if r is not None else -math.inf
        grid.add_row("level", _bar((max(level, -60.0) + 60) / 60, "cyan", f"{console.fmt_db(level)} dBFS"))
        active = self.monitor.listener.detector.active
        if r is not None:
            for label, score in r.scores.items():
                colour = "red" if label in active else "green"
                note = "  [bold red]DETECTED[/bold red]" if label in active else ""
                grid.add_row(label, _bar(score, colour, f"{score:.2f}", note))
        for event in list(stats.recent)[-5:][::-1]:
            grid.add_row("event", _event_text(event))
        return grid


def _bar(value: float, colour: str, text: str, note: str = "") -> Any:
    from rich.text import Text

    filled = max(0, min(BAR_WIDTH, int(round(value * BAR_WIDTH))))
    return Text.assemble(
        ("█" * filled, colour), ("·" * (BAR_WIDTH - filled), "dim"), f" {text}", Text.from_markup(note)
    )


def _event_text(event: Event) -> str:
    from micmon.actions import format_event

    return format_event(event)


def monitor(
    model: Annotated[
        Path | None, config_option("monitor.model", "--model", "-m", rich_help_panel=INPUT)
    ] = None,
    system: Annotated[str | None, config_option("audio.system", "--system", rich_help_panel=INPUT)] = None,
    device: Annotated[str | None, config_option("audio.device", "--device", rich_help_panel=INPUT)] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Replay this audio file instead of listening to a device.",
            exists=True,
            dir_okay=False,
            show_default=False,
            rich_help_panel=INPUT,
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="With --input: replay as fast as possible, not in real time.",
            rich_help_panel=INPUT,
        ),
    ] = False,
    ffmpeg: Annotated[str | None, config_option("audio.ffmpeg", "--ffmpeg", rich_help_panel=INPUT)] = None,
    hop: Annotated[float | None, config_option("monitor.hop", "--hop", rich_help_panel=DETECTOR)] = None,
    threshold: Annotated[
        float | None, config_option("monitor.threshold", "--threshold", "-T", rich_help_panel=DETECTOR)
    ] = None,
    min_dbfs: Annotated[
        float | None, config_option("monitor.min_dbfs", "--min-dbfs", rich_help_panel=DETECTOR)
    ] = None,
    json_lines: Annotated[
        bool,
        typer.Option(
            "--json", help="Print only JSON lines, one per event, on stdout.", rich_help_panel=OUTPUT
        ),
    ] = False,
    web: Annotated[str | None, config_option("monitor.web", "--web", rich_help_panel=OUTPUT)] = None,
) -> None:
    """Listen with a trained model and report when its sounds start and stop.

    Windows of the model's length (overlapping by --hop) are scored through LiteRT; the detector
    (the model's calibrated settings, with the `monitor:` config section and these options on
    top) turns scores into start/end events, and the configured actions (command, webhook, MQTT
    with Home Assistant discovery, clip) run on their own threads. A lost device is reopened
    with backoff; Ctrl-C or SIGTERM ends open events, flushes the actions and exits 0.

    Example: micmon monitor --device plughw:1,0 --json
    """
    from micmon.actions import PrintAction
    from micmon.detect import model_hop, model_settings
    from micmon.model import Model
    from micmon.monitor import Monitor, device_source, file_source

    cfg = resolve()
    c = cfg.config
    model_dir = c.monitor.model or c.paths.model_dir
    loaded = Model.load(model_dir)
    spec = loaded.spec
    assert spec is not None  # Model.load always reads one from micmon.json
    settings = model_settings(
        loaded.metadata,
        list(loaded.labels),
        overrides=cfg.detector_overrides(),
        background_label=cfg.background_label(),
    )
    window_hop = model_hop(loaded.metadata, spec.window_seconds, c.monitor.hop)
    actions, server = _outputs(cfg, loaded, settings, str(model_dir))
    interactive = console.interactive() and not json_lines
    if json_lines or not interactive:
        actions.insert(0, PrintAction(json_lines=json_lines))
    if input_file is not None:
        source = file_source(
            input_file, spec=spec, hop=window_hop, realtime=not fast, ffmpeg_bin=c.audio.ffmpeg
        )
        name = str(input_file)
    else:
        source = device_source(
            c.audio.system, c.audio.device, spec=spec, hop=window_hop, ffmpeg_bin=c.audio.ffmpeg
        )
        name = f"{c.audio.system}:{c.audio.device}"
    mon = Monitor(
        loaded,
        source,
        settings=settings,
        actions=actions,
        hop=window_hop,
        live=input_file is None,
        max_backoff=c.monitor.reconnect_max_seconds,
    )
    detector = mon.listener.detector
    targets = ", ".join(f"{label} (threshold {detector.thresholds[label]:g})" for label in detector.targets)
    console.info(
        f"listening to {name} for {targets} ({spec.window_seconds:g} s windows every "
        f"{window_hop:g} s, model {model_dir}); Ctrl-C to stop"
    )
    if server is not None:
        console.info(f"web page at {server.start(mon).url}")
    try:
        stats = _run(mon, LiveView(mon, name) if interactive else None)
    finally:
        if server is not None:
            server.stop()
    console.info(
        f"stopped after {console.fmt_seconds(stats.audio_seconds)} of audio: "
        f"{stats.windows} windows, {stats.events} events, "
        f"{stats.reconnects} reconnects"
    )


def _outputs(
    cfg: ResolvedConfig, model: Any, settings: DetectorSettings, model_dir: str
) -> tuple[list[Action], WebServer | None]:
    """Return the configured actions (plus the event history) and the web server, if any; the
    web address is checked and bound now, before anything starts."""
    from micmon.detect import Detector
    from micmon.history import HistoryAction

    c = cfg.config
    assert model.spec is not None
    watched = Detector(model.labels, settings, window_seconds=model.spec.window_seconds).targets
    actions = build_actions(cfg, list(watched))  # MQTT announces the watched labels only
    store = cfg.history_store(create=True) if c.history.enabled else None
    if store is not None:
        actions.append(HistoryAction(store, model=model_dir))
    server = None
    if c.monitor.web is not None:
        from micmon.web import WebServer

        server = WebServer(
            c.monitor.web,
            store=store,
            clip_folder=cfg.clip_folder(),
            token=c.monitor.web_token,
            model=model_dir,
        )
    return actions, server


def _run(mon: Monitor, view: LiveView | None) -> MonitorStats:
    """Run the monitor until stopped (SIGINT/SIGTERM end it cleanly), with the live view if any."""
    from micmon.monitor import install_signal_handlers

    restore = install_signal_handlers(mon)
    try:
        if view is None:
            return mon.run()
        mon.on_window = view.on_window
        with view.live:
            return mon.run()
    finally:
        restore()
