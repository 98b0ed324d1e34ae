"""micmon.audio with the real ffmpeg: formats, rates, channels, window rules, live capture, errors."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import threading
import time
import warnings
import wave
import weakref
from pathlib import Path

import numpy as np
import pytest

import micmon.audio.source as source_module
from micmon.audio import (
    AudioDevice,
    AudioDirectory,
    AudioFile,
    AudioPlayer,
    AudioSegment,
    AudioSource,
    probe_duration,
)
from micmon.errors import AudioError, FFmpegNotFoundError, LabelsError, ParameterError

LABELS = {"00:00": "negative", "00:02.4": "positive"}
#: Window labels of a 5.3 s recording cut into 1 s windows with LABELS (most of each window wins).
EXPECTED_LABELS = ["negative", "negative", "positive", "positive", "positive"]
LEFT_HZ, RIGHT_HZ = 1000.0, 2500.0


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    """The frequency of the strongest FFT bin of float/int16 mono samples."""
    x = np.asarray(x, dtype=np.float64)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / rate)[power.argmax()])


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """Write float samples in [-1, 1] ((n,) or (n, channels)) as 16-bit PCM wav, without ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def write_wav_sample(
    folder: Path, seconds: float = 5.3, rate: int = 16000, labels: dict[str, str] | None = LABELS
) -> Path:
    """folder/audio.wav (a LEFT_HZ tone) and, unless labels is None, its labels.json."""
    write_wav(folder / "audio.wav", sine(LEFT_HZ, seconds, rate), rate)
    if labels is not None:
        (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def stepped_tones(folder: Path, seconds: int = 8, rate: int = 16000) -> Path:
    """folder/audio.wav where second k holds a tone of 500 + 250 k Hz; labels a before 4 s, b after."""
    signal = np.concatenate([sine(500.0 + 250.0 * k, 1.0, rate) for k in range(seconds)])
    write_wav(folder / "audio.wav", signal, rate)
    (folder / "labels.json").write_text(json.dumps({"00:00": "a", "00:04": "b"}))
    return folder


def ffmpeg_children(prefix: str = "ffmpeg") -> set[int]:
    """Pids of this process's children named `prefix`*, running or zombie."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and comm.startswith(prefix):
            found.add(int(entry))
    return found


FORMATS = [
    ("mp3", 44100, 2),
    ("mp3", 16000, 1),
    ("wav", 22050, 2),
    ("wav", 48000, 1),
    ("flac", 16000, 2),
    ("flac", 44100, 1),
    ("ogg", 48000, 2),
    ("ogg", 22050, 1),
]


@pytest.fixture(scope="module")
def formats_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<fmt>_<rate>_<channels>/audio.<fmt> + labels.json for FORMATS, 5.3 s, made by one ffmpeg run."""
    root = tmp_path_factory.mktemp("formats")
    n = len(FORMATS)
    graph = [f"[0:a][1:a]amerge=inputs=2,asplit={n}" + "".join(f"[s{i}]" for i in range(n))]
    outputs: list[str] = []
    for i, (fmt, rate, channels) in enumerate(FORMATS):
        folder = root / f"{fmt}_{rate}_{channels}"
        folder.mkdir()
        (folder / "labels.json").write_text(json.dumps(LABELS))
        label = f"s{i}"
        if channels == 1:  # keep the left channel only
            graph.append(f"[s{i}]pan=mono|c0=c0[m{i}]")
            label = f"m{i}"
        outputs += [
            "-map",
            f"[{label}]",
            "-ar",
            str(rate),
            "-ac",
            str(channels),
            str(folder / f"audio.{fmt}"),
        ]
    source = "sine=frequency={}:sample_rate=48000:duration=5.3"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source.format(LEFT_HZ),
            "-f",
            "lavfi",
            "-i",
            source.format(RIGHT_HZ),
            "-filter_complex",
            ";".join(graph),
            *outputs,
        ],
        check=True,
    )
    return root


@pytest.fixture(scope="module")
def tones_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stepped_tones(tmp_path_factory.mktemp("stepped"))


# -- formats, rates, channels ------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "rate", "channels"), FORMATS)
def test_formats_decode_to_whole_labelled_windows(
    formats_dir: Path, fmt: str, rate: int, channels: int
) -> None:
    folder = formats_dir / f"{fmt}_{rate}_{channels}"
    with AudioFile(AudioDirectory(folder), sample_duration=1, sample_rate=rate, channels=channels) as reader:
        windows = list(reader)
    assert len(windows) == 5  # floor(5.3 s / 1 s)
    assert [w.label for w in windows] == EXPECTED_LABELS
    assert [w.start for w in windows] == pytest.approx([0, 1, 2, 3, 4])
    for w in windows:
        assert (w.sample_rate, w.channels) == (rate, channels)
        assert w.audio.shape == (rate * channels,)
        assert w.duration == pytest.approx(1.0)
    frames = windows[2].audio.reshape(-1, channels)
    assert peak_hz(frames[:, 0], rate) == pytest.approx(LEFT_HZ, abs=2)
    if channels == 2:  # de-interleaved correctly: each channel keeps its own tone
        assert peak_hz(frames[:, 1], rate) == pytest.approx(RIGHT_HZ, abs=2)


def test_stereo_file_read_as_mono_is_its_first_channel_not_interleaved(formats_dir: Path) -> None:
    with AudioFile(
        formats_dir / "flac_16000_2" / "audio.flac", sample_duration=1, sample_rate=16000
    ) as reader:
        window = next(iter(reader))
    assert window.audio.shape == (16000,)
    assert peak_hz(window.audio, 16000) == pytest.approx(LEFT_HZ, abs=1)
    power = np.abs(np.fft.rfft(window.audio.astype(np.float64) * np.hanning(16000))) ** 2
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    right = power[np.abs(freqs - RIGHT_HZ) < 5].max()
    assert right < 1e-4 * power.max()  # the other channel's tone is not mixed in


def test_two_microphones_apart_do_not_comb_filter_the_mono_audio(tmp_path: Path) -> None:
    # the right microphone hears the same 800 Hz tone 10 samples (0.625 ms, half a period) later:
    # averaging the two channels would cancel it; the mono audio keeps its full level
    rate, delay = 16000, 10
    left = sine(800.0, 2.0, rate)
    right = np.concatenate([np.zeros(delay, np.float32), left[:-delay]])
    path = write_wav(tmp_path / "two-mics.wav", np.stack([left, right], axis=1), rate, channels=2)
    assert np.abs(left[delay:] + right[delay:]).max() < 0.01  # the average would be silence
    with AudioFile(path, sample_duration=1, sample_rate=rate) as reader:
        window = next(iter(reader))
    rms = float(np.sqrt(np.mean((window.audio.astype(np.float64) / 32768) ** 2)))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


# -- the requested sample rate is applied (pitfall 1) ----------------------------------------------------
@pytest.mark.parametrize(
    ("source", "requested"), [("mp3_16000_1", 44100), ("wav_48000_1", 16000), ("ogg_22050_1", 44100)]
)
def test_the_requested_sample_rate_is_applied(formats_dir: Path, source: str, requested: int) -> None:
    path = next((formats_dir / source).glob("audio.*"))
    with AudioFile(path, sample_duration=2, sample_rate=requested) as reader:
        windows = list(reader)
    assert len(windows) == 2  # 5.3 s of audio, not 5.3 s * requested / native
    assert [w.start for w in windows] == [0.0, 2.0]
    for w in windows:
        assert w.sample_rate == requested
        assert w.label is None  # a path without labels_file
        assert len(w.audio) == 2 * requested
        assert peak_hz(w.audio, requested) == pytest.approx(LEFT_HZ, abs=1)


# -- the last partial window (pitfall 7) -------------------------------------------------------------------
def test_window_count_is_the_same_on_every_run_and_the_partial_window_is_dropped(formats_dir: Path) -> None:
    counts = []
    for _ in range(3):
        with AudioFile(formats_dir / "mp3_44100_2" / "audio.mp3", sample_duration=1) as reader:
            counts.append(sum(1 for _ in reader))
    assert counts == [5, 5, 5]


def test_a_file_ending_on_a_window_boundary_keeps_its_last_window(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio.wav", sine(440.0, 6.0, 16000), 16000)
    with AudioFile(tmp_path / "audio.wav", sample_duration=2, sample_rate=16000) as reader:
        assert [w.start for w in reader] == [0.0, 2.0, 4.0]


def test_realtime_and_fast_reads_give_the_same_windows(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio.wav", sine(440.0, 0.7, 16000), 16000)
    fast = list(AudioFile(tmp_path / "audio.wav", sample_duration=0.25, sample_rate=16000))
    with AudioFile(tmp_path / "audio.wav", sample_duration=0.25, sample_rate=16000, realtime=True) as reader:
        slow = list(reader)
    assert len(fast) == len(slow) == 2
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)


def test_a_slow_consumer_loses_nothing_from_a_file(tmp_path: Path) -> None:
    rate = 8000
    write_wav(tmp_path / "audio.wav", sine(440.0, 12.0, rate), rate)
    with AudioFile(tmp_path / "audio.wav", sample_duration=1, sample_rate=rate) as reader:
        first = next(reader)
        time.sleep(0.4)  # ffmpeg fills the bounded buffer and waits
        rest = list(reader)
    audio = np.concatenate([first.audio, *(w.audio for w in rest)])
    assert len(rest) == 11
    reference = np.round(sine(440.0, 12.0, rate) * 32767)
    np.testing.assert_array_equal(audio, reference)


# -- paths and sample folders (pitfalls 4, 5, 6) ---------------------------------------------------------
def test_home_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_wav_sample(tmp_path / "rec")
    windows = list(AudioFile("~/rec/audio.wav", "~/rec/labels.json", sample_duration=1, sample_rate=16000))
    assert [w.label for w in windows] == EXPECTED_LABELS
    directory = AudioDirectory("~/rec")
    assert directory.path == str(tmp_path / "rec")
    assert directory.audio_file == str(tmp_path / "rec" / "audio.wav")
    assert AudioFile(directory).path == str(tmp_path / "rec" / "audio.wav")
    assert [d.path for d in AudioDirectory.scan("~")] == [str(tmp_path / "rec")]


def test_audiofile_accepts_an_audiodirectory(formats_dir: Path) -> None:
    # Pitfall 5; the format matrix above also reads every file through AudioFile(AudioDirectory).
    folder = formats_dir / "ogg_22050_1"
    directory = AudioDirectory(folder)
    assert directory.audio_file == str(folder / "audio.ogg")
    assert directory.labels_file == str(folder / "labels.json")
    assert directory.name == folder.name
    assert os.fspath(directory) == str(folder)
    reader = AudioFile(directory, sample_duration=1, sample_rate=22050)
    assert reader.path == directory.audio_file
    assert reader.labels_file == directory.labels_file
    assert reader.labels is not None and reader.labels.names == ["negative", "positive"]
    assert directory.labels is not None and directory.labels.starts == [0.0, 2.4]


def test_audio_without_labels_gives_label_none(tmp_path: Path) -> None:
    directory = AudioDirectory(write_wav_sample(tmp_path, labels=None))
    assert directory.labels_file is None
    assert directory.labels is None
    windows = list(AudioFile(directory, sample_duration=1, sample_rate=16000))
    assert len(windows) == 5
    assert {w.label for w in windows} == {None}


def test_labels_beyond_the_first_key_only(tmp_path: Path) -> None:
    write_wav_sample(tmp_path, labels={"00:02.5": "positive"})
    labels = [w.label for w in AudioFile(AudioDirectory(tmp_path), sample_duration=1, sample_rate=16000)]
    assert labels == [None, None, "positive", "positive", "positive"]


def test_scan_finds_sample_folders_recursively(tmp_path: Path) -> None:
    # scan goes by file names; it does not decode, so the files need not hold audio.
    for sub, fmt in (("a", "wav"), ("b/c", "flac"), ("b/d/e", "mp3"), (".hidden", "wav")):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / f"audio.{fmt}").write_bytes(b"")
        (tmp_path / sub / "labels.json").write_text(json.dumps(LABELS))
    (tmp_path / "no_labels").mkdir()
    (tmp_path / "no_labels" / "audio.ogg").write_bytes(b"")
    (tmp_path / "not_audio").mkdir()
    (tmp_path / "not_audio" / "audio.txt").write_bytes(b"")
    (tmp_path / "not_audio" / "labels.json").write_text(json.dumps(LABELS))
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_labels").mkdir()
    (tmp_path / "only_labels" / "labels.json").write_text(json.dumps(LABELS))
    found = AudioDirectory.scan(tmp_path)
    assert [Path(d.path).relative_to(tmp_path).as_posix() for d in found] == ["a", "b/c", "b/d/e"]
    assert [Path(d.audio_file).name for d in found] == ["audio.wav", "audio.flac", "audio.mp3"]
    everything = AudioDirectory.scan(tmp_path, require_labels=False)
    assert [Path(d.path).name for d in everything] == ["a", "c", "e", "no_labels"]
    assert [d.name for d in AudioDirectory.scan(tmp_path / "b" / "d")] == ["e"]
    assert [d.name for d in AudioDirectory.scan(tmp_path / "a")] == ["a"]
    assert AudioDirectory.scan(tmp_path / "empty") == []


def test_scan_follows_symlinked_sample_folders_once(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "room"
    elsewhere.mkdir(parents=True)
    (elsewhere / "audio.wav").write_bytes(b"")
    (elsewhere / "labels.json").write_text(json.dumps(LABELS))
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "room").symlink_to(elsewhere)
    (audio / "loop").symlink_to(audio)  # a cycle is walked once, not forever
    found = AudioDirectory.scan(audio)
    assert [d.name for d in found] == ["room"]
    assert found[0].path == str(audio / "room")


def test_scan_and_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=f"{tmp_path / 'missing'}: no such folder"):
        AudioDirectory.scan(tmp_path / "missing")
    with pytest.raises(AudioError, match=f"{tmp_path / 'missing'}: no such sample folder"):
        AudioDirectory(tmp_path / "missing")
    with pytest.raises(AudioError, match=r"no audio file; expected one named audio\.\{mp3,wav"):
        AudioDirectory(tmp_path)


# -- start, duration, hop ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "duration"), [(2, 4.5), ("00:02", "00:00:04.500")])
def test_start_and_duration(tones_dir: Path, start: str | float, duration: str | float) -> None:
    reader = AudioFile(
        AudioDirectory(tones_dir), start=start, duration=duration, sample_duration=1, sample_rate=16000
    )
    windows = list(reader)
    assert [w.start for w in windows] == pytest.approx([2, 3, 4, 5])
    assert [w.label for w in windows] == ["a", "a", "b", "b"]  # labels at the absolute time
    assert [peak_hz(w.audio, 16000) for w in windows] == pytest.approx([1000, 1250, 1500, 1750], abs=1)


def test_start_with_milliseconds_and_no_duration(tones_dir: Path) -> None:
    windows = list(
        AudioFile(tones_dir / "audio.wav", start="00:00:02.500", sample_duration=2, sample_rate=16000)
    )
    assert [w.start for w in windows] == pytest.approx([2.5, 4.5])  # 5.5 s left: two whole windows
    first = windows[0].audio.astype(np.float64)
    assert peak_hz(first[8000:16000], 16000) == pytest.approx(1250, abs=2)  # 3.0-3.5 s


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (dict(start="two"), r"start: 'two' is not a time"),
        (dict(duration="00:00"), r"duration: must be > 0, got '00:00'"),
        (dict(duration=-1), r"duration: -1 must be a finite, non-negative time"),
        (dict(sample_rate=0), r"sample_rate: must be a positive integer \(Hz\), got 0"),
        (dict(sample_rate=16000.0), r"sample_rate: must be a positive integer"),
        (dict(channels=0), r"channels: must be a positive integer, got 0"),
        (dict(sample_duration=0), r"window_seconds: must be > 0 seconds, got 0"),
        (dict(hop=0), r"hop: seconds between window starts must be > 0, got 0"),
    ],
)
def test_bad_reader_parameters(tones_dir: Path, options: dict[str, object], pattern: str) -> None:
    with pytest.raises(ParameterError, match=pattern):
        AudioFile(tones_dir / "audio.wav", **options)  # type: ignore[arg-type]


def test_hop_shorter_than_the_window_overlaps(tones_dir: Path) -> None:
    with AudioFile(
        tones_dir / "audio.wav", duration=5.3, sample_duration=1, sample_rate=16000, hop=0.5
    ) as reader:
        windows = list(reader)
    assert [w.start for w in windows] == pytest.approx([0.5 * i for i in range(9)])
    for a, b in zip(windows, windows[1:], strict=False):
        np.testing.assert_array_equal(a.audio[8000:], b.audio[:8000])


def test_hop_longer_than_the_window_skips(tones_dir: Path) -> None:
    windows = list(AudioFile(tones_dir / "audio.wav", sample_duration=0.5, sample_rate=16000, hop=2))
    assert [w.start for w in windows] == pytest.approx([0, 2, 4, 6])
    assert [peak_hz(w.audio, 16000) for w in windows] == pytest.approx([500, 1000, 1500, 2000], abs=2)


@pytest.mark.parametrize(("window", "hop"), [(0.33, 0.21), (0.07, 0.29)])
def test_windows_are_exact_slices_of_the_stream(tones_dir: Path, window: float, hop: float) -> None:
    # Window and hop sizes that are no multiple of the reader's 50 ms chunks.
    with wave.open(str(tones_dir / "audio.wav")) as wav:
        reference = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    size, step = round(window * 16000), round(hop * 16000)
    with AudioFile(tones_dir / "audio.wav", sample_duration=window, sample_rate=16000, hop=hop) as reader:
        windows = list(reader)
    assert len(windows) == (len(reference) - size) // step + 1
    for k, w in enumerate(windows):
        assert w.start == pytest.approx(k * step / 16000)
        np.testing.assert_array_equal(w.audio, reference[k * step : k * step + size])


# -- live capture -----------------------------------------------------------------------------------------
SINE_HZ, LIVE_RATE = 1234.5, 16000


def sine_residual(audio: np.ndarray) -> float:
    """RMS misfit of int16 samples to one continuous SINE_HZ sine, relative to its amplitude."""
    x = audio.astype(np.float64)
    t = np.arange(len(x)) / LIVE_RATE
    basis = np.stack([np.sin(2 * np.pi * SINE_HZ * t), np.cos(2 * np.pi * SINE_HZ * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    amplitude = float(np.hypot(*coef))
    return float(np.sqrt(np.mean((x - basis @ coef) ** 2))) / amplitude


def test_pause_and_resume_drop_no_audio_from_a_live_source() -> None:
    # Pitfall 16: the original stopped capturing while the consumer was busy.
    device = AudioDevice(
        "lavfi",
        f"sine=frequency={SINE_HZ}:sample_rate={LIVE_RATE}",
        sample_duration=0.25,
        sample_rate=LIVE_RATE,
        input_options=["-re"],
    )
    with device as source:
        first = next(source)
        source.pause()
        assert source.paused
        time.sleep(1.0)
        source.resume()
        assert not source.paused
        rest = [next(source) for _ in range(3)]
        assert source.running
    windows = [first, *rest]
    assert [w.start for w in windows] == [0.0, 0.25, 0.5, 0.75]
    assert all(len(w.audio) == LIVE_RATE // 4 for w in windows)
    assert source.dropped_seconds == 0
    # One unbroken sine across the pause: any lost stretch would break its phase.
    assert sine_residual(np.concatenate([w.audio for w in windows])) < 0.01
    assert not source.running


def test_sine_residual_detects_a_gap() -> None:
    full = np.round(4096 * np.sin(2 * np.pi * SINE_HZ * np.arange(32000) / LIVE_RATE))
    assert sine_residual(full.astype(np.int16)) < 0.01
    gapped = np.concatenate([full[:8000], full[8800:16800]]).astype(np.int16)  # 50 ms lost
    assert sine_residual(gapped) > 0.1


@pytest.fixture()
def small_live_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep 1 s of live audio instead of 60 s, so an overrun takes moments to provoke."""
    monkeypatch.setattr(source_module, "LIVE_BUFFER_SECONDS", 1.0)


def overrun_live_source(at_least: float = 3.0) -> AudioDevice:
    """A live source fed faster than real time and not read for a moment: its buffer overflows."""
    source = AudioDevice(
        "lavfi", "sine=frequency=1000:sample_rate=8000", sample_duration=0.5, sample_rate=8000
    )
    iter(source)
    deadline = time.monotonic() + 5
    while source.dropped_seconds < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return source


def closes_within(source: AudioSource, seconds: float) -> bool:
    """Close `source` on a thread and return whether close() finished within `seconds`."""
    closer = threading.Thread(target=source.close, daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


@pytest.mark.usefixtures("small_live_buffer")
def test_an_overrun_live_source_drops_the_oldest_audio_and_keeps_going() -> None:
    with overrun_live_source() as source:
        windows = [next(source) for _ in range(3)]
        assert source.dropped_seconds >= 3
        assert source.running
        dropped = source.dropped_seconds
    assert source.dropped_seconds >= dropped  # still counted after close (the monitor reads it then)
    assert all(len(w.audio) == 4000 for w in windows)
    # No window is stitched across dropped audio: each one is an unbroken 1 kHz sine.
    for w in windows:
        x = w.audio.astype(np.float64)
        t = np.arange(len(x)) / 8000
        basis = np.stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
        assert np.sqrt(np.mean((x - basis @ coef) ** 2)) < 0.01 * np.hypot(*coef)


@pytest.mark.usefixtures("small_live_buffer")
def test_window_starts_account_for_dropped_audio() -> None:
    with overrun_live_source() as source:
        first, second = next(source), next(source)
        dropped = source.dropped_seconds
    assert first.start >= 2, (first.start, dropped)  # 3 s or more were dropped before it
    assert second.start >= first.start + 0.5


@pytest.mark.usefixtures("small_live_buffer")
def test_dropping_audio_does_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="micmon.audio.source"):
        overrun_live_source().close()
    assert 1 <= len(caplog.records) <= 5, len(caplog.records)
    assert "consumer too slow, dropped" in caplog.records[0].getMessage()


@pytest.mark.parametrize("kind", ["file", "live"])
def test_close_is_prompt_while_ffmpeg_is_ahead_of_the_consumer(kind: str, tmp_path: Path) -> None:
    # A full buffer stops the reader; ffmpeg then blocks on the pipe, where SIGTERM alone
    # did not stop it (close took 3-6 s before the fix).
    source: AudioSource
    if kind == "file":
        write_wav(tmp_path / "audio.wav", sine(440.0, 30.0, 8000), 8000)
        source = AudioFile(tmp_path / "audio.wav", sample_duration=1, sample_rate=8000)
    else:
        source = AudioDevice(
            "lavfi", "sine=frequency=1000:sample_rate=8000", sample_duration=0.5, sample_rate=8000
        )
    before = ffmpeg_children()
    next(iter(source))
    time.sleep(0.3)  # ffmpeg fills the buffer and blocks on the pipe
    assert closes_within(source, 1.0), f"close() of a {kind} source took over 1 s"
    assert ffmpeg_children() - before == set()
    assert not source.running


def test_close_from_another_thread_ends_a_blocked_iteration() -> None:
    source = AudioDevice(
        "lavfi",
        f"sine=frequency={SINE_HZ}:sample_rate={LIVE_RATE}",
        sample_duration=0.2,
        sample_rate=LIVE_RATE,
        input_options=["-re"],
    )
    seen: list[float] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for window in source:
                seen.append(window.start)
        except BaseException as exc:  # reported below
            errors.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    source.close()  # the consumer is waiting for the next window
    consumer.join(2.0)
    assert not consumer.is_alive(), "iteration did not end after close()"
    assert errors == []
    assert seen and seen == pytest.approx([0.2 * i for i in range(len(seen))])


def test_close_leaves_no_ffmpeg_process() -> None:
    before = ffmpeg_children()
    source = AudioDevice("lavfi", "anoisesrc=sample_rate=16000", sample_duration=0.5, sample_rate=16000)
    window = next(iter(source))
    assert window.audio.shape == (8000,)
    assert ffmpeg_children() - before  # ffmpeg is running
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 3
    assert ffmpeg_children() - before == set()  # terminated and reaped: no zombie
    source.close()  # twice is fine
    assert list(source) == []


def test_leaving_a_with_block_early_stops_ffmpeg(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio.wav", sine(440.0, 30.0, 8000), 8000)
    before = ffmpeg_children()
    with (
        pytest.raises(RuntimeError),
        AudioFile(tmp_path / "audio.wav", sample_duration=1, sample_rate=8000) as reader,
    ):
        for _ in reader:
            raise RuntimeError("consumer failed")
    assert ffmpeg_children() - before == set()


def test_an_abandoned_reader_stops_ffmpeg(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio.wav", sine(440.0, 30.0, 8000), 8000)
    before = ffmpeg_children()
    reader = AudioFile(tmp_path / "audio.wav", sample_duration=1, sample_rate=8000)
    ref = weakref.ref(reader)
    assert next(iter(reader)).start == 0.0
    del reader
    try:
        gc.collect()
        deadline = time.monotonic() + 0.5
        while ffmpeg_children() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ffmpeg_children() - before == set()
    finally:
        leaked = ref()
        if leaked is not None:  # don't leave the ffmpeg running for the other tests
            leaked.close()


def test_a_finished_file_leaves_no_ffmpeg_process(tmp_path: Path) -> None:
    write_wav(tmp_path / "audio.wav", sine(440.0, 2.0, 8000), 8000)
    before = ffmpeg_children()
    reader = AudioFile(tmp_path / "audio.wav", sample_duration=1, sample_rate=8000)
    assert len(list(reader)) == 2
    assert ffmpeg_children() - before == set()
    reader.close()


def test_device_needs_a_device_for_other_systems() -> None:
    with pytest.raises(ParameterError, match=r"device: required for audio system 'lavfi'"):
        AudioDevice("lavfi")
    with pytest.raises(ParameterError, match=r"system: expected an ffmpeg input format"):
        AudioDevice("")


def test_a_failing_device_is_an_audio_error() -> None:
    with (
        pytest.raises(AudioError, match=r"lavfi:no_such_source=1: ffmpeg failed \(.+\)"),
        AudioDevice("lavfi", "no_such_source=1", sample_duration=0.5, sample_rate=16000) as source,
    ):
        next(source)


# -- errors -----------------------------------------------------------------------------------------------
def test_missing_ffmpeg_binary(tones_dir: Path) -> None:
    reader = AudioFile(tones_dir / "audio.wav", ffmpeg_bin="/nonexistent/ffmpeg")
    with pytest.raises(FFmpegNotFoundError, match=r"/nonexistent/ffmpeg: does not exist; install it"):
        list(reader)


def test_bad_ffmpeg_paths_say_what_is_wrong(tmp_path: Path) -> None:
    from micmon.audio.ffmpeg import find_executable

    script = tmp_path / "ffmpeg"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(FFmpegNotFoundError, match=f"{script}: is not executable; `chmod"):
        find_executable(str(script))
    with pytest.raises(FFmpegNotFoundError, match=f"{tmp_path}: is a folder"):
        find_executable(str(tmp_path))
    script.chmod(0o755)
    assert find_executable(str(script)) == str(script)


def test_ffmpeg_not_on_path(tones_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FFmpegNotFoundError, match=r"^ffmpeg: not found on PATH; install it"):
        with AudioFile(tones_dir / "audio.wav"):
            pass
    with pytest.raises(FFmpegNotFoundError, match="not found on PATH"):
        probe_duration(tones_dir / "audio.wav")


def test_a_nonexistent_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "audio.mp3"
    with pytest.raises(AudioError, match=f"^{path}: no such audio file$"):
        AudioFile(path)


def test_a_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioError, match=f"^{path}: ffmpeg failed") as info:
        list(AudioFile(path, sample_duration=1))
    assert "exit code" in str(info.value) or len(str(info.value)) > len(f"{path}: ffmpeg failed ()")
    with pytest.raises(AudioError, match=f"^{path}: ffprobe could not read it"):
        probe_duration(path)


def test_bad_labels_through_an_audiodirectory(tmp_path: Path) -> None:
    write_wav_sample(tmp_path, labels={"00:00": "negative", "0:61": "positive"})
    directory = AudioDirectory(tmp_path)  # labels are read lazily
    with pytest.raises(LabelsError) as info:
        AudioFile(directory)
    message = str(info.value)
    assert str(tmp_path / "labels.json") in message
    assert "'0:61'" in message and "seconds must be < 60" in message
    with pytest.raises(LabelsError, match="'0:61'"):
        _ = directory.labels


def test_a_missing_labels_file_is_named(tones_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=f"^{tmp_path / 'labels.json'}: no such labels file$"):
        AudioFile(tones_dir / "audio.wav", tmp_path / "labels.json")


def test_probe_duration(tones_dir: Path) -> None:
    assert probe_duration(tones_dir / "audio.wav") == pytest.approx(8.0, abs=0.01)
    with pytest.raises(AudioError, match="no such audio file"):
        probe_duration(tones_dir / "missing.wav")


# -- AudioSegment -------------------------------------------------------------------------------------------
@pytest.fixture()
def segment() -> AudioSegment:
    audio = np.round(sine(3000.0, 1.0, 16000) * 32767).astype(np.int16)
    return AudioSegment(audio.tobytes(), 16000, label="positive", start=4.0)


def test_segment_basics(segment: AudioSegment) -> None:
    assert segment.duration == 1.0
    assert segment.end == 5.0
    assert AudioSegment(segment.raw, 16000).audio.tolist() == segment.audio.tolist()
    assert segment.samples.dtype == np.float32
    assert segment.dbfs == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.05)
    assert "label='positive'" in repr(segment)
    stereo = AudioSegment(np.repeat(segment.audio, 2), 16000, channels=2)
    assert stereo.duration == 1.0
    np.testing.assert_allclose(stereo.samples, segment.samples)


def test_segment_spectrum(segment: AudioSegment) -> None:
    bands = segment.spectrum(250, 7500, bins=100)
    assert bands.shape == (100,)
    assert bands.argmax() == int((3000 - 250) / 7250 * 100)
    default = segment.spectrum()  # 20 Hz to min(20 kHz, Nyquist)
    assert default.shape == (100,)
    assert default.argmax() == int((3000 - 20) / (8000 - 20) * 100)
    linear = segment.spectrum(250, 7500, bins=50, scale="linear")
    assert linear.argmax() == int((3000 - 250) / 7250 * 50)
    with pytest.raises(ParameterError, match="Nyquist"):
        segment.spectrum(250, 9000)


def test_segment_plots(segment: AudioSegment) -> None:
    import matplotlib.pyplot as plt

    fig = segment.plot_audio(show=False)
    assert fig.axes[0].get_xlabel() == "time (s)"
    assert len(fig.axes[0].lines[0].get_xdata()) == 16000
    assert fig.axes[0].get_xlim()[0] == pytest.approx(4.0, abs=0.1)
    fig2 = segment.plot_spectrum(250, 7500, bins=20, show=False)
    assert len(fig2.axes[0].patches) == 20
    plt.close(fig)
    plt.close(fig2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg cannot show; the README's call must still work
        segment.plot_spectrum()
    assert plt.get_fignums() == []  # shown figures are closed


def test_audiosource_is_an_iterator_and_a_context_manager(tones_dir: Path) -> None:
    reader = AudioFile(tones_dir / "audio.wav", sample_duration=2, sample_rate=16000)
    assert isinstance(reader, AudioSource)
    assert iter(reader) is reader
    assert reader.position == 0.0
    assert next(reader).start == 0.0
    assert reader.position == 2.0
    reader.close()


def test_player_plays_windows_through_ffplay() -> None:
    # conftest sets SDL_AUDIODRIVER=dummy: ffplay plays in real time into no device.
    mono = AudioSegment(np.round(sine(440.0, 0.15, 8000) * 32767).astype(np.int16), 8000)
    stereo = AudioSegment(np.repeat(mono.audio, 2), 8000, channels=2)
    before = ffmpeg_children("ffplay")
    started = time.monotonic()
    with AudioPlayer() as player:
        player.play(mono)
        player.play(mono)
        player.play(stereo)  # another format: a new ffplay
    assert time.monotonic() - started >= 0.45  # close() let the queued audio play
    assert ffmpeg_children("ffplay") - before == set()


def test_player_without_ffplay() -> None:
    with pytest.raises(FFmpegNotFoundError, match=r"/nonexistent/ffplay: does not exist"):
        with AudioPlayer("/nonexistent/ffplay"):
            pass
