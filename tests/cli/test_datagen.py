"""`micmon datagen` and `micmon-datagen` with the real ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from micmon.dataset import Dataset
from micmon.features import FeatureSpec
from micmon_cli import datagen_compat


def _windows_per_label(seconds: float, events: tuple[tuple[float, float], ...]) -> dict[str, int]:
    """Expected 2 s windows per label with the default hop (a quarter window): every 0.5 s around
    the sounds (a window covered at least half by one is positive; one holding less of it is left
    out), every 2 s in the background."""
    counts = {"negative": 0, "positive": 0}
    for i in range(int((seconds - 2.0) / 0.5) + 1):
        start = 0.5 * i
        cover = sum(max(0.0, min(b, start + 2.0) - max(a, start)) for a, b in events)
        if cover >= 1.0:
            counts["positive"] += 1
        elif cover == 0 and start % 2.0 == 0:
            counts["negative"] += 1
    return counts


def test_datagen_writes_one_dataset_per_folder_with_exact_counts(cli_data: Path, recordings: dict) -> None:
    files = sorted(p.name for p in cli_data.glob("*.npz"))
    assert files == [f"{name}.npz" for name in recordings]
    for name, (seconds, events) in recordings.items():
        data = Dataset.load(cli_data / f"{name}.npz")
        assert data.class_counts() == _windows_per_label(seconds, events)
        # the config's defaults: 16 kHz, 2 s windows every 0.5 s; the flags' cutoffs and bins
        assert data.spec == FeatureSpec(
            sample_rate=16000, low_freq=250, high_freq=7500, bins=100, hop_seconds=0.5
        )


def test_datagen_jobs_refuse_and_force(
    invoke, assert_error, cli_audio: Path, isolated: Path, recordings: dict
) -> None:
    out = isolated / "data"
    result = invoke(
        [
            "datagen",
            cli_audio,
            out,
            "--feature",
            "spectrum",
            "--jobs",
            "2",
            "--bins",
            "40",
            "--sample-rate",
            "16000",
            "--high",
            "8000",
        ]
    )
    assert result.exit_code == 0, result.output
    table = " ".join(result.stdout.split())
    for name in recordings:
        assert name in table
    assert "total" in table
    assert "outside the band" not in result.stderr  # 3 kHz beeps: inside 20-8000 Hz
    first = (out / "sample_1.npz").read_bytes()
    assert_error(invoke(["datagen", cli_audio, out]), "sample_1.npz", "already exist", "--force")
    assert (out / "sample_1.npz").read_bytes() == first
    assert (
        invoke(["datagen", cli_audio, out, "--force", "--feature", "spectrum", "--bins", "20"]).exit_code == 0
    )
    assert Dataset.load(out / "sample_1.npz").samples.shape[1] == 20


def test_micmon_datagen_accepts_the_original_command_line(
    cli_audio: Path, isolated: Path, cli_data: Path, recordings: dict
) -> None:
    out = isolated / "original"
    with pytest.raises(SystemExit) as exit_info:
        datagen_compat.main(
            [
                "--low",
                "250",
                "--high",
                "7500",
                "--bins",
                "100",
                "--sample-duration",
                "2",
                "--channels",
                "1",
                str(cli_audio),
                str(out),
            ]
        )
    assert exit_info.value.code in (0, None)
    for name in recordings:
        mine, reference = Dataset.load(out / f"{name}.npz"), Dataset.load(cli_data / f"{name}.npz")
        assert np.allclose(mine.samples, reference.samples)
        assert mine.labels == reference.labels
    # The original's short flags work too.
    with pytest.raises(SystemExit) as exit_info:
        datagen_compat.main(
            ["-b", "50", "-d", "1", "-r", "22050", "-c", "1", "--force", str(cli_audio), str(out)]
        )
    assert exit_info.value.code in (0, None)
    assert Dataset.load(out / "sample_1.npz").spec.window_seconds == 1.0  # type: ignore[union-attr]


def test_micmon_datagen_errors_are_one_line(isolated: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        datagen_compat.main(["missing_audio", "out"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: AUDIO_DIR: missing_audio does not exist")
    assert "Traceback" not in err


def test_datagen_errors(invoke, assert_error, cli_audio: Path, isolated: Path) -> None:
    assert_error(invoke(["datagen", "no_such_dir", "out"]), "no_such_dir", "does not exist")
    (isolated / "empty").mkdir()
    assert_error(invoke(["datagen", "empty", "out"]), "no sample folders", "micmon record")
    assert_error(
        invoke(["datagen", cli_audio, "out", "--ffmpeg", "/opt/none/ffmpeg"]),
        "/opt/none/ffmpeg",
        "does not exist",
    )
    broken = isolated / "broken"
    shutil.copytree(cli_audio / "sample_1", broken / "sample_1")
    (broken / "sample_1" / "audio.mp3").write_bytes(b"this is not audio" * 100)
    line = assert_error(invoke(["datagen", broken, "out"]), "sample_1", "audio.mp3")
    assert not (isolated / "out" / "sample_1.npz").exists(), line


def test_datagen_overlapping_windows(invoke, cli_audio: Path, isolated: Path) -> None:
    from micmon.dataset import Dataset

    (isolated / "micmon.yaml").write_text("features:\n  hop_seconds: 2.0\n")  # no overlap
    out = isolated / "overlap"
    result = invoke(["datagen", cli_audio, out, "--sample-rate", "16000", "--high", "7500"])
    assert result.exit_code == 0, result.output
    (isolated / "micmon.yaml").write_text("features:\n  window_seconds: 2.0\n")  # the default hop
    again = invoke(["datagen", cli_audio, isolated / "overlap2", "--sample-rate", "16000", "--high", "7500"])
    assert again.exit_code == 0, again.output
    one, four = Dataset.load(out / "sample_1.npz"), Dataset.load(isolated / "overlap2" / "sample_1.npz")
    # 2 s windows every 0.5 s around the sounds, every 2 s in the background
    for label in one.labels:
        if label != "negative":
            i, j = one.labels.index(label), four.labels.index(label)
            assert np.sum(four.classes == j) >= 3 * np.sum(one.classes == i) > 0
    negative = one.labels.index("negative")
    assert np.sum(four.classes == four.labels.index("negative")) <= np.sum(one.classes == negative)
    assert four.spec is not None and four.spec.hop_seconds == 0.5


def test_datagen_warns_of_a_sound_the_band_leaves_out(invoke, isolated: Path) -> None:
    from helpers import make_recording

    make_recording(
        isolated / "audio" / "clock", seconds=30.0, events=((8.0, 16.0),), freq=9000.0, positive="[b]alarm"
    )
    result = invoke(["datagen", "audio", "data"])  # the defaults: 16 kHz, nothing above 8 kHz
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "warning: label '[b]alarm'" in warning and "above 8000 Hz" in warning, warning  # not markup
    assert "audio.sample_rate: 44100" in warning and "--sample-rate" in warning
    [line] = [x for x in result.stderr.splitlines() if x.startswith("warning: label")]
    assert line.endswith("run datagen again"), line  # one line however long, as an error
    assert (isolated / "data" / "clock.npz").exists()  # a warning, not a refusal
    result = invoke(["datagen", "audio", "data44", "--sample-rate", "44100"])
    assert result.exit_code == 0, result.output
    assert "outside the band" not in result.stderr
