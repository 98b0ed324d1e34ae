"""Cost of `micmon monitor` over a long real-time replay, and its start-up.

    .venv/bin/python bench/monitor_bench.py [--minutes 10] [--hop 0.5] [--no-clips] [--per-window]

A generated recording (noise + hum, 3 kHz beeps in every other minute; bench/_common.py) is replayed
in real time (ffmpeg -re, decoded at 16 kHz) through `micmon.monitor.Monitor` with the DEFAULT model
(`_common.default_model`: the CNN `micmon.training.train` builds for the default 16 kHz 40-band
log-mel features), publishing to a private mosquitto broker and, unless --no-clips, saving mp3
clips. The monitor runs in a fresh interpreter that never imports TensorFlow (the model is served
by LiteRT). Reported:

- CPU time per second of audio: the monitor process (all its threads), and ffmpeg's decoding;
  target under 0.5 % of one core for the monitor at a quarter-window hop;
- peak RSS of the monitor process (target at most 80 MB without clips) and RSS after the first and
  the last minute (flat memory: the difference stays near zero);
- start-up: from launching the monitor's interpreter to its first scored window (real time: the
  first window needs its 2 s of audio, shown apart), and the whole `micmon monitor --input
  2s.wav --fast` CLI run (start, one window, stop); target at most 1.5 s;
- delay from the end of the window that decided an event to the event's dispatch (median, max),
  and on to its arrival at an MQTT subscriber.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _common as c  # noqa: E402

CPU_TARGET = 0.005
RSS_TARGET_MB = 80.0
START_TARGET_S = 1.5
RSS_SAMPLE_SECONDS = 5.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _measure(audio: str, broker: str, clips: str, hop: float, share_frames: bool = True) -> dict:
    """Replay `audio` in real time through the monitor with MQTT and (unless `clips` is "-") clip actions."""
    from micmon.actions import ClipAction, MqttAction
    from micmon.detect import DetectorSettings
    from micmon.model import Model
    from micmon.monitor import Monitor, file_source

    imported = time.time()
    model = Model.load(c.DEFAULT_MODEL_DIR)
    loaded = time.time()
    first: list[float] = []
    dispatched: list[dict] = []
    # Arrival of a window's last sample, estimated as (stream time + the smallest offset any window
    # showed between the wall clock and stream time): removes ffmpeg's start-up from the delay.
    lag = {"min": float("inf"), "end": 0.0}
    anchored: list[float] = []

    def on_window(result: Any) -> None:
        if not first:
            first.append(time.time())
        lag["min"] = min(lag["min"], time.monotonic() - result.end)
        lag["end"] = result.end

    def on_event(event: Any) -> None:
        anchored.append(time.monotonic() - (lag["min"] + lag["end"]))
        dispatched.append({"kind": event.kind, "start": event.start, "wall": time.time()})

    mqtt = MqttAction(broker, labels=model.labels, node_id="bench")
    monitor = Monitor(
        model,
        file_source(audio, spec=model.spec, hop=hop, realtime=True),
        settings=DetectorSettings(threshold=0.6, k=2, n=3, m=2),
        hop=hop,
        actions=[mqtt] if clips == "-" else [mqtt, ClipAction(clips, format="mp3", pre_roll=5.0)],
        live=False,
        on_window=on_window,
        on_event=on_event,
    )
    if not share_frames:  # the comparison: every window's features computed from scratch
        monitor.listener._features = None
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not done.wait(RSS_SAMPLE_SECONDS):
            samples.append((time.monotonic() - t0, _rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    stats = monitor.run()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    done.set()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    delays = sorted(monitor.event_delays)
    first_minute = [r for t, r in samples if t <= 60.0]
    return {
        "imported_at": imported,
        "model_loaded_at": loaded,
        "first_window_at": first[0] if first else float("nan"),
        "audio_seconds": stats.audio_seconds,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "scoring_cpu_seconds": stats.scoring_seconds,
        "child_cpu_seconds": children.ru_utime + children.ru_stime,
        "windows": stats.windows,
        "events": stats.events,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rss_after_first_minute_mb": first_minute[-1] if first_minute else float("nan"),
        "rss_at_end_mb": samples[-1][1] if samples else float("nan"),
        "delay_median_s": c.percentile(delays, 50),
        "delay_max_s": delays[-1] if delays else None,
        "anchored_median_s": c.percentile(anchored, 50),
        "anchored_max_s": max(anchored) if anchored else None,
        "rss_per_minute_mb": [round(r, 1) for t, r in samples if int(t) % 60 < RSS_SAMPLE_SECONDS],
        "dispatched": dispatched,
        "clips": 0 if clips == "-" else len(list(Path(clips).glob("*.mp3"))),
        "tensorflow_imported": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
    }


def _mid_max(values: list[float]) -> tuple[float | None, float | None]:
    return (c.percentile(values, 50), max(values)) if values else (None, None)


def _ms(median: float | None, worst: float | None) -> str:
    if median is None or worst is None:
        return "-"
    return f"median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"


def _cli_start(audio: Path, model: Path, runs: int) -> list[float]:
    """Wall seconds of whole `micmon monitor --input W.wav --fast` runs on one window of audio:
    start-up, the first (only) window scored, and shutdown."""
    micmon, env = c.micmon_command()
    window = c.default_spec().window_seconds
    wav = c.OUT / f"first{window:g}s.wav"
    cut = [c.ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(audio)]
    c.run_timed([*cut, "-t", f"{window + 0.1:g}", "-ar", str(c.SAMPLE_RATE), "-ac", "1", str(wav)])
    cmd = [*micmon, "monitor", "--input", str(wav), "--fast", "--model", str(model), "--json"]
    return [c.run_timed(cmd, cwd=c.OUT, env=env)["wall_s"] for _ in range(runs + 1)][1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="length of the replay")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between windows")
    parser.add_argument("--retrain", action="store_true", help="train the default model again")
    parser.add_argument("--no-clips", action="store_true", help="no clip action (the RSS target's case)")
    parser.add_argument("--starts", type=int, default=5, help="runs of the CLI start-up measurement")
    parser.add_argument(
        "--per-window",
        action="store_true",
        help="compute every window's features from scratch (the comparison)",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, *rest = args.worker
        out = _measure(rest[0], rest[1], rest[2], float(rest[3]), rest[4] == "share")
        print(json.dumps(out))
        return 0

    from mqtt_broker import MosquittoBroker, Subscriber

    here = Path(__file__)
    c.OUT.mkdir(parents=True, exist_ok=True)
    folder = c.recording(args.minutes, name=f"monitor{args.minutes}")
    model = c.default_model(retrain=args.retrain)
    starts = _cli_start(folder / "audio.mp3", model, args.starts)
    clips = c.OUT / "monitor_clips"
    for old in clips.glob("*"):
        old.unlink()
    clips.mkdir(exist_ok=True)
    print(f"replaying {args.minutes} min in real time ...", file=sys.stderr, flush=True)
    arrived: dict[tuple[str, float], float] = {}
    with MosquittoBroker() as broker, Subscriber(broker, "micmon/bench/event") as sub:

        def stamp(client: object, userdata: object, msg: object) -> None:
            data = json.loads(msg.payload)  # type: ignore[attr-defined]
            arrived[(data["event"], round(data["start_seconds"], 3))] = time.time()

        sub.client.on_message = stamp
        launched = time.time()
        m = c.run_worker(
            here,
            "measure",
            str(folder / "audio.mp3"),
            broker.url,
            "-" if args.no_clips else str(clips),
            str(args.hop),
            "per-window" if args.per_window else "share",
            timeout=args.minutes * 60 + 600,
        )
        time.sleep(1.0)
    legs = {
        kind: sorted(
            arrived[key] - d["wall"]
            for d in m["dispatched"]
            if d["kind"] == kind and (key := (kind, round(d["start"], 3))) in arrived
        )
        for kind in ("start", "end")
    }
    audio = m["audio_seconds"]
    first, window = m["first_window_at"], c.default_spec().window_seconds
    cpu_share = m["cpu_seconds"] / audio
    rows = [
        ["audio replayed", f"{audio:.0f} s ({m['windows']} windows, hop {args.hop:g} s)", ""],
        ["events (start + end)", f"{m['events']} ({m['clips']} mp3 clips)", ""],
        [
            "monitor CPU per audio second",
            f"{cpu_share * 100:.2f}% of one core",
            c.verdict(cpu_share < CPU_TARGET),
        ],
        ["  of which scoring (features + LiteRT)", f"{m['scoring_cpu_seconds'] / audio * 100:.2f}%", ""],
        ["ffmpeg decode CPU per audio second", f"{m['child_cpu_seconds'] / audio * 100:.2f}%", ""],
        [
            "peak RSS (monitor process)",
            f"{m['peak_rss_mb']:.0f} MB",
            c.verdict(m["peak_rss_mb"] <= RSS_TARGET_MB) if args.no_clips else "(target without clips)",
        ],
        [
            "RSS after 1 min / at the end",
            f"{m['rss_after_first_minute_mb']:.0f} MB / {m['rss_at_end_mb']:.0f} MB",
            "",
        ],
        ["RSS every minute", " ".join(f"{r:.0f}" for r in m["rss_per_minute_mb"]) + " MB", ""],
        ["window end -> event dispatched", _ms(m["anchored_median_s"], m["anchored_max_s"]), ""],
        [
            "  same, from monitor start (incl. ffmpeg start-up)",
            _ms(m["delay_median_s"], m["delay_max_s"]),
            "",
        ],
        ["events received over MQTT", f"{len(legs['start']) + len(legs['end'])} of {m['events']}", ""],
        ["start event dispatched -> MQTT subscriber", _ms(*_mid_max(legs["start"])), ""],
        ["end event dispatched -> MQTT subscriber (after its mp3 clip)", _ms(*_mid_max(legs["end"])), ""],
        ["TensorFlow imported by the monitor", str(m["tensorflow_imported"]), ""],
        [
            "launch -> first window scored (real time)",
            f"{first - launched:.2f} s (imports {m['imported_at'] - launched:.2f} s, model loaded "
            f"{m['model_loaded_at'] - launched:.2f} s)",
            "",
        ],
        [
            f"  less the first window's {window:g} s of audio",
            f"{first - launched - window:.2f} s",
            c.verdict(first - launched - window <= START_TARGET_S),
        ],
        [
            f"`micmon monitor --input {window:g}s.wav --fast` whole run ({args.starts} runs)",
            f"median {c.median(starts):.2f} s ({min(starts):.2f}-{max(starts):.2f})",
            c.verdict(c.median(starts) <= START_TARGET_S),
        ],
    ]
    print(
        c.table(
            f"micmon monitor, {args.minutes} min real-time replay, default model, MQTT"
            f"{'' if args.no_clips else ' + clip'} actions; load average {c.load_average()}",
            ["measure", "value", "target"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
