"""Hostile inputs through the real CLI: every case must exit with the right code, print no traceback,
name the file/key/value at fault, and leave every file the user had byte-identical.

Each case starts from a copy of one small workspace (two labelled recordings, their datasets, a
trained model, odd files beside them), breaks something, runs `micmon ...` in-process and checks
the four promises. Set MICMON_HOSTILE_REPORT=path to write the per-case figures as JSON (used for
docs/reliability.md; it also works against an older checkout, where cases fail).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import background, beeps, encode, make_recording
from micmon_cli.app import app

RATE = 44100
TEMP_MARKER = ".micmon-tmp"
#: A case still running after this long has hung (e.g. retrying a device forever).
CASE_TIMEOUT = 60
_RESULTS: list[dict] = []

Setup = Callable[[Path, pytest.MonkeyPatch], None]


@dataclass
class Case:
    """One hostile input: what to break, what to run, what must come out."""

    id: str
    args: list[str]
    code: int | tuple[int, ...]
    says: tuple[str, ...] = ()
    setup: Setup | None = None
    #: Paths (relative to the workspace) that may appear; anything else new is a failure.
    creates: tuple[str, ...] = ()
    #: Paths that must not exist afterwards (e.g. an empty sample folder).
    absent: tuple[str, ...] = ()
    #: Text that must not appear in the output.
    never: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


# -- the workspace -------------------------------------------------------------------------------
CONFIG = """\
paths:
  audio_dir: audio
  datasets_dir: data
  model_dir: model
monitor:
  hop: 1.0
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Path:
    """The workspace every case starts from (built once)."""
    from micmon.audio import AudioDirectory, AudioFile
    from micmon.dataset import DatasetWriter
    from micmon.model import Model

    root = tmp_path_factory.mktemp("hostile") / "ws"
    make_recording(root / "audio" / "s1", seconds=8.0, events=[(2.0, 5.0)], rate=RATE, fmt="wav", seed=1)
    make_recording(root / "audio" / "s2", seconds=8.0, events=[(3.0, 6.0)], rate=RATE, fmt="wav", seed=2)
    spec = Model.load(trained_model_dir).spec
    for folder in AudioDirectory.scan(root / "audio"):
        with (
            AudioFile(folder, sample_duration=spec.window_seconds, sample_rate=spec.sample_rate) as reader,
            DatasetWriter(root / "data" / f"{folder.name}.npz", spec=spec) as w,
        ):
            for window in reader:
                w += window
    shutil.copytree(trained_model_dir, root / "model")
    rng = np.random.default_rng(5)
    encode(
        root / "clip.wav",
        background(6.0, RATE, rng) + np.r_[np.zeros(RATE * 2), beeps(2.0, RATE), np.zeros(RATE * 2)],
        RATE,
    )
    encode(root / "short.wav", background(0.5, RATE, rng), RATE)
    low = 8000
    encode(root / "phone.wav", background(6.0, low, rng) + 0.0, low)
    encode(root / "silence.wav", np.zeros(RATE * 35), RATE)
    (root / "empty.mp3").write_bytes(b"")
    (root / "garbage.mp3").write_bytes(rng.bytes(4096))
    (root / "notes.txt").write_text("my notes\n")
    (root / "micmon.yaml").write_text(CONFIG)
    return root


@pytest.fixture
def ws(template: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh copy of the workspace, as the current folder."""
    root = isolated / "ws"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    yield root


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and TEMP_MARKER not in path.name:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# -- ways to break the workspace -----------------------------------------------------------------
def write(rel: str, data: str | bytes) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")

    return setup


def folder(rel: str) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        path = root / rel
        if path.exists() and not path.is_dir():
            path.unlink()
        path.mkdir(parents=True, exist_ok=True)

    return setup


def remove(rel: str) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def copy(src: str, dest: str) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / src, root / dest)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        for s in setups:
            s(root, mp)

    return setup


def labels(rel: str, mapping: dict[str, str]) -> Setup:
    return write(rel, json.dumps(mapping))


def disk_full(module: str, name: str) -> Setup:
    """Make `module.name` (a writer) fail as a full disk would."""

    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        import importlib

        mod = importlib.import_module(module)

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        mp.setattr(mod, name, full)

    return setup


def stale_temp(rel_dir: str) -> Setup:
    """Leave what a killed run leaves: a hidden temp file of a process that is gone."""

    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        (root / rel_dir).mkdir(parents=True, exist_ok=True)
        from micmon._io import temp_sibling

        host = temp_sibling(root / "x").name.split("@")[1].split(".")[0]
        (root / rel_dir / f".s9.npz.{proc.pid}@{host}.dead{TEMP_MARKER}.npz").write_bytes(b"")

    return setup


def chmod_x(rel: str) -> Setup:
    def setup(root: Path, mp: pytest.MonkeyPatch) -> None:
        (root / rel).chmod(0o755)

    return setup


LATIN1 = '{"00:00": "négatif"}'.encode("latin-1")
BOM = b'\xef\xbb\xbf{"00:00": "negative", "00:02": "positive", "00:05": "negative"}'
GOOD = {"00:00": "negative", "00:02": "positive", "00:05": "negative"}

# -- the cases -----------------------------------------------------------------------------------
CASES: list[Case] = [
    # config
    Case("config-yaml-syntax", ["config"], 1, ("micmon.yaml",), write("micmon.yaml", "paths: [unclosed\n")),
    Case(
        "config-every-problem",
        ["config"],
        1,
        ("monitor.threshold", "monitor.k", "paths.bogus"),
        write("micmon.yaml", "monitor:\n  threshold: 7\n  k: -1\npaths:\n  bogus: 1\n"),
        never=("more problem",),
    ),
    Case("config-is-a-folder", ["--config", "audio", "config"], 2, ("audio", "directory")),
    Case(
        "config-not-utf8",
        ["config"],
        1,
        ("micmon.yaml", "UTF-8"),
        write("micmon.yaml", "paths:\n  audio_dir: caf\xe9\n".encode("latin-1")),
    ),
    Case("config-missing-file", ["--config", "nowhere.yaml", "config"], 1, ("nowhere.yaml",)),
    Case("config-env-missing", ["config"], 1, ("elsewhere.yaml",), env={"MICMON_CONFIG": "elsewhere.yaml"}),
    Case("config-init-exists", ["config", "--init", "micmon.yaml"], 1, ("micmon.yaml", "--force")),
    Case("config-init-into-file", ["config", "--init", "notes.txt/micmon.yaml"], 1, ("notes.txt",)),
    Case("config-init-onto-folder", ["config", "--init", "audio", "--force"], 2, ("audio",)),
    Case(
        "config-wrong-type",
        ["config"],
        1,
        ("audio.sample_rate", "'fast'"),
        write("micmon.yaml", "audio:\n  sample_rate: fast\n"),
    ),
    Case(
        "config-unknown-section",
        ["config"],
        1,
        ("trainnig",),
        write("micmon.yaml", "trainnig:\n  epochs: 3\n"),
    ),
    Case("config-not-a-mapping", ["config"], 1, ("micmon.yaml",), write("micmon.yaml", "- a\n- b\n")),
    # label
    Case(
        "label-latin1",
        ["label", "s1"],
        1,
        ("labels.json", "not UTF-8", "save it as UTF-8"),
        write("audio/s1/labels.json", LATIN1),
    ),
    Case("label-bom-accepted", ["label", "s1"], 0, ("positive",), write("audio/s1/labels.json", BOM)),
    Case(
        "label-check-goes-on",
        ["label", "--check"],
        1,
        ("s1", "not UTF-8", "s2", "past the end"),
        both(
            write("audio/s1/labels.json", LATIN1),
            labels("audio/s2/labels.json", {"00:00": "negative", "09:00": "positive"}),
        ),
    ),
    Case(
        "label-json-is-folder",
        ["label", "s1"],
        1,
        ("labels.json", "is a folder"),
        folder("audio/s1/labels.json"),
    ),
    Case(
        "label-bad-json",
        ["label", "s1"],
        1,
        ("labels.json", "line 1"),
        write("audio/s1/labels.json", '{"00:00": "negative",'),
    ),
    Case(
        "label-repeated-key",
        ["label", "s1"],
        1,
        ("'00:00'", "twice"),
        write("audio/s1/labels.json", '{"00:00": "negative", "00:00": "positive"}'),
    ),
    Case(
        "label-json-list",
        ["label", "s1"],
        1,
        ("labels.json", "list"),
        write("audio/s1/labels.json", '["negative"]'),
    ),
    Case(
        "label-json-empty",
        ["label", "s1"],
        1,
        ("labels.json", "no labels"),
        write("audio/s1/labels.json", "{}"),
    ),
    Case(
        "label-bad-time-key",
        ["label", "s1"],
        1,
        ("'1:2:3:4'",),
        labels("audio/s1/labels.json", {"1:2:3:4": "negative"}),
    ),
    Case("label-bad-pair", ["label", "s1", "abc"], 1, ("'abc'", "TIME=LABEL")),
    Case("label-empty-label", ["label", "s1", "00:05="], 1, ("'00:05='",)),
    Case("label-pair-past-end", ["label", "s1", "09:00=positive"], 1, ("09:00", "past the end")),
    Case("label-negative-time", ["label", "s1", "--", "-5=positive"], 1, ("-5",)),
    Case("label-no-such-sample", ["label", "nope"], 1, ("nope", "micmon record nope")),
    Case("label-no-audio", ["label", "s1"], 1, ("s1", "no audio file"), remove("audio/s1/audio.wav")),
    Case(
        "label-timeline-past-end",
        ["label", "s1"],
        0,
        ("positive", "09:00", "past the end"),
        labels("audio/s1/labels.json", {"00:00": "negative", "00:02": "positive", "09:00": "negative"}),
        never=("-532",),
    ),
    Case(
        "label-garbage-audio",
        ["label", "s1"],
        1,
        ("audio.wav",),
        both(remove("audio/s1/audio.wav"), copy("garbage.mp3", "audio/s1/audio.wav")),
    ),
    Case(
        "label-empty-audio",
        ["label", "s1"],
        1,
        ("audio.wav",),
        both(remove("audio/s1/audio.wav"), copy("empty.mp3", "audio/s1/audio.wav")),
    ),
    Case(
        "label-check-empty-audio",
        ["label", "--check"],
        1,
        ("s1",),
        both(remove("audio/s1/audio.wav"), copy("empty.mp3", "audio/s1/audio.wav")),
    ),
    Case(
        "label-check-no-labels",
        ["label", "--check"],
        1,
        ("s2", "no labels.json"),
        remove("audio/s2/labels.json"),
    ),
    Case(
        "label-labels-json-is-folder-on-write",
        ["label", "s1", "00:03=positive"],
        1,
        ("labels.json", "folder"),
        folder("audio/s1/labels.json"),
    ),
    Case("label-no-sample", ["label"], 1, ("SAMPLE",)),
    Case("label-audio-dir-missing", ["label", "--check", "--audio-dir", "nowhere"], 1, ("nowhere",)),
    # datagen
    Case("datagen-out-is-file", ["datagen", "audio", "notes.txt"], 1, ("notes.txt", "not a folder")),
    Case(
        "datagen-out-parent-is-file", ["datagen", "audio", "notes.txt/data"], 1, ("notes.txt", "not a folder")
    ),
    Case(
        "datagen-short-recording",
        ["datagen", "audio", "out"],
        1,
        ("s3", "no labelled", "1 of 3 sample folders failed"),
        both(
            folder("audio/s3"),
            copy("short.wav", "audio/s3/audio.wav"),
            labels("audio/s3/labels.json", {"00:00": "negative"}),
        ),
        creates=("out", "out/s1.npz", "out/s2.npz"),
        absent=("out/s3.npz",),
    ),
    Case(
        "datagen-empty-audio",
        ["datagen", "audio", "out"],
        1,
        ("s3", "empty"),
        both(
            folder("audio/s3"),
            copy("empty.mp3", "audio/s3/audio.mp3"),
            labels("audio/s3/labels.json", {"00:00": "negative"}),
        ),
        creates=("out", "out/s1.npz", "out/s2.npz"),
        absent=("out/s3.npz",),
    ),
    Case(
        "datagen-garbage-audio",
        ["datagen", "audio", "out"],
        1,
        ("s3", "audio.mp3"),
        both(
            folder("audio/s3"),
            copy("garbage.mp3", "audio/s3/audio.mp3"),
            labels("audio/s3/labels.json", {"00:00": "negative"}),
        ),
        creates=("out", "out/s1.npz", "out/s2.npz"),
        absent=("out/s3.npz",),
    ),
    Case(
        "datagen-latin1-labels",
        ["datagen", "audio", "out"],
        1,
        ("s1", "labels.json", "UTF-8"),
        write("audio/s1/labels.json", LATIN1),
        creates=("out", "out/s2.npz"),
    ),
    Case(
        "datagen-labels-is-folder",
        ["datagen", "audio", "out"],
        1,
        ("s1/labels.json", "is a folder"),
        both(remove("audio/s1/labels.json"), folder("audio/s1/labels.json")),
    ),
    Case(
        "datagen-low-above-high", ["datagen", "audio", "out", "--low", "9000", "--high", "100"], 1, ("9000",)
    ),
    Case("datagen-bins-zero", ["datagen", "audio", "out", "--bins", "0"], (1, 2), ("bins",)),
    Case("datagen-rate-zero", ["datagen", "audio", "out", "--sample-rate", "0"], (1, 2), ("sample",)),
    Case(
        "datagen-ffmpeg-missing",
        ["datagen", "audio", "out", "--ffmpeg", "/opt/none/ffmpeg"],
        1,
        ("/opt/none/ffmpeg", "does not exist"),
        creates=("out",),
    ),
    Case(
        "datagen-ffmpeg-folder",
        ["datagen", "audio", "out", "--ffmpeg", "./audio"],
        1,
        ("audio", "is a folder"),
        creates=("out",),
    ),
    Case(
        "datagen-ffmpeg-not-executable",
        ["datagen", "audio", "out", "--ffmpeg", "./notes.txt"],
        1,
        ("notes.txt", "not executable"),
        creates=("out",),
    ),
    Case("datagen-exists-no-force", ["datagen", "audio", "data"], 1, ("already exist", "--force")),
    Case("datagen-audio-dir-missing", ["datagen", "nowhere", "out"], 1, ("nowhere",)),
    Case("datagen-audio-dir-is-file", ["datagen", "notes.txt", "out"], 1, ("notes.txt",)),
    Case("datagen-jobs-zero", ["datagen", "audio", "out", "--jobs", "0"], 2, ("--jobs",)),
    Case(
        "datagen-no-sample-folders", ["datagen", "empty", "out"], 1, ("no sample folders",), folder("empty")
    ),
    Case(
        "datagen-stale-temp-removed",
        ["datagen", "audio", "out"],
        0,
        (),
        stale_temp("out"),
        creates=("out/s1.npz", "out/s2.npz"),
    ),
    Case(
        "datagen-disk-full",
        ["datagen", "audio", "out"],
        1,
        ("out/s1.npz", "no space left"),
        disk_full("micmon.dataset.writer", "_write_npz"),
        creates=("out",),
    ),
    # train (all fail before TensorFlow is imported)
    Case("train-data-missing", ["train", "nowhere", "m"], 1, ("nowhere",)),
    Case("train-data-empty", ["train", "empty", "m"], 1, ("empty", "micmon datagen"), folder("empty")),
    Case("train-model-dir-is-file", ["train", "data", "notes.txt"], 1, ("notes.txt", "not a folder")),
    Case(
        "train-model-parent-is-file", ["train", "data", "notes.txt/model"], 1, ("notes.txt", "not a folder")
    ),
    Case("train-model-exists", ["train", "data", "model"], 1, ("model", "--force")),
    Case(
        "train-corrupt-npz", ["train", "data", "m"], 1, ("bad.npz",), write("data/bad.npz", b"not a zip file")
    ),
    Case("train-empty-npz", ["train", "data", "m"], 1, ("bad.npz",), write("data/bad.npz", b"")),
    Case("train-epochs-zero", ["train", "data", "m", "--epochs", "0"], 1, ("epochs",)),
    Case("train-split-two", ["train", "data", "m", "--validation-split", "2"], 1, ("validation_split",)),
    Case("train-unknown-label", ["train", "data", "m", "--labels", "negative,barking"], 1, ("barking",)),
    Case("train-datasets-is-file", ["train", "notes.txt", "m"], 1, ("notes.txt",)),
    # predict
    Case("predict-missing-file", ["predict", "nope.wav"], 1, ("nope.wav", "no such audio file")),
    Case("predict-low-rate", ["predict", "phone.wav"], 0, ("phone.wav", "8000 Hz", "unreliable")),
    Case("predict-too-short", ["predict", "short.wav"], 1, ("short.wav", "shorter than one")),
    Case(
        "predict-too-short-with-start",
        ["predict", "short.wav", "--start", "0.2"],
        1,
        ("short.wav", "shorter than one"),
        never=("start earlier",),
    ),
    Case("predict-empty-file", ["predict", "empty.mp3"], 1, ("empty.mp3", "empty")),
    Case("predict-garbage", ["predict", "garbage.mp3"], 1, ("garbage.mp3", "not an audio file")),
    Case("predict-text-file", ["predict", "notes.txt"], 1, ("notes.txt",)),
    Case(
        "predict-batch-goes-on",
        ["predict", "clip.wav", "nope.wav", "audio/s1"],
        1,
        ("nope.wav", "1 of 3 files failed", "clip.wav", "s1"),
    ),
    Case("predict-folder-without-audio", ["predict", "empty"], 1, ("empty", "audio"), folder("empty")),
    Case("predict-model-missing", ["predict", "--model", "nowhere", "clip.wav"], 1, ("nowhere",)),
    Case(
        "predict-model-json-corrupt",
        ["predict", "clip.wav"],
        1,
        ("micmon.json",),
        write("model/micmon.json", "{not json"),
    ),
    Case(
        "predict-model-empty-folder",
        ["predict", "--model", "empty", "clip.wav"],
        1,
        ("empty",),
        folder("empty"),
    ),
    Case(
        "predict-model-tflite-garbage",
        ["predict", "clip.wav"],
        1,
        ("model",),
        both(write("model/model.tflite", b"garbage"), remove("model/model.keras")),
    ),
    Case("predict-bad-start", ["predict", "clip.wav", "--start", "-5"], 1, ("--start",)),
    Case("predict-bad-duration", ["predict", "clip.wav", "--duration", "abc"], 1, ("--duration",)),
    Case("predict-hop-zero", ["predict", "clip.wav", "--hop", "0"], 1, ("hop",)),
    Case("predict-batch-size-zero", ["predict", "clip.wav", "--batch-size", "0"], 1, ("batch",)),
    Case(
        "predict-ffmpeg-missing",
        ["predict", "clip.wav", "--ffmpeg", "/no/ffmpeg"],
        1,
        ("/no/ffmpeg", "does not exist"),
    ),
    Case(
        "predict-start-past-end",
        ["predict", "clip.wav", "--start", "5:00"],
        1,
        ("clip.wav", "start 300 s", "start earlier"),
    ),
    # evaluate
    Case(
        "evaluate-unknown-labels",
        ["evaluate", "audio"],
        1,
        ("'barking'", "unknown to the model"),
        labels("audio/s1/labels.json", {"00:00": "negative", "00:02": "barking"}),
        never=("false alarms/h",),
    ),
    Case(
        "evaluate-calibrate-unknown-labels",
        ["evaluate", "audio", "--calibrate"],
        1,
        ("'barking'", "unknown to the model"),
        labels("audio/s2/labels.json", {"00:00": "barking"}),
    ),
    Case(
        "evaluate-no-folders",
        ["evaluate", "empty"],
        1,
        ("empty", "no labelled sample folders"),
        folder("empty"),
    ),
    Case(
        "evaluate-budget-negative",
        ["evaluate", "audio", "--calibrate", "--max-false-alarms-per-hour", "-1"],
        1,
        ("max_false_alarms_per_hour",),
    ),
    Case(
        "evaluate-latin1-goes-on",
        ["evaluate", "audio"],
        1,
        ("s1", "UTF-8", "1 of 2 recordings"),
        write("audio/s1/labels.json", LATIN1),
    ),
    Case(
        "evaluate-short-recording",
        ["evaluate", "audio"],
        1,
        ("s3", "shorter than one"),
        both(
            folder("audio/s3"),
            copy("short.wav", "audio/s3/audio.wav"),
            labels("audio/s3/labels.json", {"00:00": "negative"}),
        ),
    ),
    Case("evaluate-plot-into-file", ["evaluate", "audio", "--plot", "notes.txt"], 2, ("notes.txt",)),
    Case("evaluate-plot-under-file", ["evaluate", "audio", "--plot", "notes.txt/plots"], 1, ("notes.txt",)),
    # monitor (file replay; a device that does not exist)
    Case(
        "monitor-silence-no-event",
        ["monitor", "-i", "silence.wav", "--fast", "--json"],
        0,
        ("digital silence",),
        never=('"event"',),
    ),
    Case(
        "monitor-device-never-opens",
        ["monitor", "--system", "alsa", "--device", "hw:97,0"],
        1,
        ("hw:97,0", "arecord -l", "pactl list sources short"),
    ),
    Case(
        "monitor-clip-folder-is-file",
        ["monitor", "-i", "clip.wav", "--fast"],
        1,
        ("notes.txt", "clip folder"),
        write("micmon.yaml", CONFIG + "  actions:\n    - type: clip\n      folder: notes.txt/clips\n"),
    ),
    Case("monitor-input-missing", ["monitor", "-i", "nope.wav", "--fast"], 2, ("nope.wav",)),
    Case("monitor-input-garbage", ["monitor", "-i", "garbage.mp3", "--fast"], 1, ("garbage.mp3",)),
    Case("monitor-threshold-two", ["monitor", "-i", "clip.wav", "--threshold", "2"], 1, ("threshold",)),
    Case(
        "monitor-k-above-n",
        ["monitor", "-i", "clip.wav"],
        1,
        ("k",),
        write("micmon.yaml", CONFIG + "  k: 3\n  n: 2\n"),
    ),
    Case(
        "monitor-unknown-target",
        ["monitor", "-i", "clip.wav"],
        1,
        ("barking",),
        write("micmon.yaml", CONFIG + "  targets: [barking]\n"),
    ),
    Case(
        "monitor-command-missing",
        ["monitor", "-i", "clip.wav", "--fast"],
        1,
        ("no-such-program",),
        write("micmon.yaml", CONFIG + "  actions:\n    - type: command\n      command: [no-such-program]\n"),
    ),
    Case("monitor-model-missing", ["monitor", "-i", "clip.wav", "--model", "nowhere"], 1, ("nowhere",)),
    # record
    Case(
        "record-ffmpeg-missing",
        ["record", "x", "--ffmpeg", "/no/ffmpeg", "--duration", "1"],
        1,
        ("/no/ffmpeg", "does not exist"),
        absent=("audio/x",),
    ),
    Case(
        "record-bad-device",
        ["record", "x", "--system", "lavfi", "--device", "nonsense_src", "--duration", "1"],
        1,
        ("nonsense_src", "recording failed"),
        absent=("audio/x",),
    ),
    Case("record-exists", ["record", "s1", "--duration", "1"], 1, ("s1", "--force")),
    Case("record-bad-name", ["record", "../x", "--duration", "1"], 1, ("'../x'",)),
    Case("record-duration-zero", ["record", "x", "--duration", "0"], 1, ("--duration",)),
    Case(
        "record-audio-dir-is-file",
        [
            "record",
            "x",
            "--audio-dir",
            "notes.txt",
            "--system",
            "lavfi",
            "--device",
            "sine",
            "--duration",
            "1",
        ],
        1,
        ("notes.txt",),
    ),
    Case("record-bad-format", ["record", "x", "--format", "xyz", "--duration", "1"], 2, ("xyz",)),
]


class _Hung(BaseException):
    """Raised by the alarm in a case that runs longer than CASE_TIMEOUT."""


def _run(case: Case, ws: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    if case.setup is not None:
        case.setup(ws, monkeypatch)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(ws)

    def hang(signum: int, frame: object) -> None:
        raise _Hung()

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(CASE_TIMEOUT)
    runner = CliRunner()
    hung = False
    try:
        result = runner.invoke(app, case.args, catch_exceptions=True)
        exit_code, exception = result.exit_code, result.exception
        output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    except _Hung:  # CliRunner passes BaseExceptions on
        hung, exit_code, exception, output = True, -1, None, ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    after = _snapshot(ws)
    flat = " ".join(output.split())
    changed = sorted(k for k in before if after.get(k) != before[k])
    new = sorted(k for k in after if k not in before)
    allowed = set(case.creates)
    unexpected = [k for k in new if k not in allowed and not any(k.startswith(a + "/") for a in allowed)]
    leftovers = [
        str(p.relative_to(ws)) for p in ws.rglob("*") if TEMP_MARKER in p.name or p.name.endswith(".partial")
    ]
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    crashed = exception is not None and not isinstance(exception, SystemExit)
    record = {
        "id": case.id,
        "command": case.args[0] if case.args[0] != "--config" else case.args[2],
        "exit": exit_code,
        "exit_ok": exit_code in codes and not hung,
        "hung": hung,
        "traceback": crashed or "Traceback" in output,
        "clear": all(s in flat for s in case.says) and not any(s in flat for s in case.never),
        "changed": changed,
        "unexpected": unexpected,
        "leftovers": leftovers,
        "absent_ok": all(not (ws / a).exists() for a in case.absent),
        "output": output[-1500:],
    }
    _RESULTS.append(record)
    return record


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run(case, ws, monkeypatch)
    where = f"\n--- output of micmon {' '.join(case.args)}:\n{r['output']}"
    assert not r["hung"], f"still running after {CASE_TIMEOUT} s" + where
    assert not r["traceback"], "a traceback" + where
    assert r["exit_ok"], f"exit code {r['exit']}, expected {case.code}" + where
    assert r["clear"], f"the message does not say {case.says} (or says {case.never})" + where
    assert r["changed"] == [], f"user files changed: {r['changed']}" + where
    assert r["unexpected"] == [], f"unexpected new files: {r['unexpected']}" + where
    assert r["leftovers"] == [], f"temporary files left: {r['leftovers']}" + where
    assert r["absent_ok"], f"should not exist afterwards: {case.absent}" + where


def test_verbose_keeps_the_traceback(ws: Path) -> None:
    result = CliRunner().invoke(app, ["--verbose", "datagen", "audio", "notes.txt"])
    output = result.output + result.stderr
    assert result.exit_code == 1 and "Traceback" in output and "notes.txt" in output


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


def teardown_module() -> None:
    target = os.environ.get("MICMON_HOSTILE_REPORT")
    if target and _RESULTS:
        Path(target).write_text(json.dumps(_RESULTS, indent=1))
