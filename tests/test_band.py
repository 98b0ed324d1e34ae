"""Where labelled sounds lie against the features' band (`micmon.dataset.band`), with the real ffmpeg."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import encode
from micmon.audio import AudioDirectory
from micmon.dataset.band import BandPower, band_warnings, label_band_power
from micmon.features import FeatureSpec

RATE = 44100
EVENTS = ((8.0, 14.0), (22.0, 28.0))


def murmur(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Return a talk-like background: speech-band noise swelling at a syllable rate, over a noise floor."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, n)
    band *= 0.1 / band.std()
    t = np.arange(n) / RATE
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t)
    return band * swell + 0.003 * rng.standard_normal(n)


def sample_folder(root: Path, freq: float, *, seed: int = 0) -> AudioDirectory:
    """Write a sample folder: 36 s of murmur with two 6 s stretches of beeps at `freq` labelled alarm."""
    rng = np.random.default_rng(seed)
    signal = murmur(36.0, rng)
    t = np.arange(len(signal)) / RATE
    beeping = (np.sin(2 * np.pi * freq * t) * ((t % 0.5) < 0.25)) * 0.1
    for start, end in EVENTS:
        inside = (t >= start) & (t < end)
        signal[inside] += beeping[inside]
    folder = root / f"beeps_{int(freq)}"
    encode(folder / "audio.mp3", signal, RATE)
    labels = {"00:00": "negative"}
    for start, end in EVENTS:
        labels[f"00:{int(start):02d}"] = "alarm"
        labels[f"00:{int(end):02d}"] = "negative"
    (folder / "labels.json").write_text(json.dumps(labels))
    return AudioDirectory(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[int, AudioDirectory]:
    root = tmp_path_factory.mktemp("band")
    return {freq: sample_folder(root, freq) for freq in (1000, 9000)}


def powers(folder: AudioDirectory, spec: FeatureSpec) -> dict[str, BandPower]:
    return label_band_power(folder, spec, ["negative"], duration=36.0)


def test_a_beep_above_the_16_khz_band_is_outside_it_and_inside_the_44_khz_band(folders) -> None:
    at16 = powers(folders[9000], FeatureSpec(sample_rate=16000, high_freq=8000))
    at44 = powers(folders[9000], FeatureSpec(sample_rate=44100, high_freq=20000))
    assert list(at16) == ["alarm"]  # the background label is not a sound
    assert at16["alarm"].outside_share > 0.9
    assert at16["alarm"].above > 10 * at16["alarm"].inside
    assert at44["alarm"].outside_share < 0.1
    [line] = band_warnings(at16, FeatureSpec(sample_rate=16000, high_freq=8000))
    assert "label 'alarm'" in line and "above 8000 Hz" in line and "audio.sample_rate" in line
    assert "\n" not in line
    assert band_warnings(at44, FeatureSpec(sample_rate=44100, high_freq=20000)) == []


def test_a_beep_inside_the_talk_band_warns_at_no_rate(folders) -> None:
    for spec in (FeatureSpec(sample_rate=16000, high_freq=8000), FeatureSpec(sample_rate=44100)):
        found = powers(folders[1000], spec)
        assert found["alarm"].inside > 0 and found["alarm"].outside_share < 0.1
        assert band_warnings(found, spec) == []


def test_the_cutoffs_count_too(folders) -> None:
    high = FeatureSpec(sample_rate=44100, high_freq=5000)  # a high_freq below Nyquist hides 9 kHz
    [line] = band_warnings(powers(folders[9000], high), high)
    assert "above 5000 Hz" in line and "features.high_freq" in line and "audio.sample_rate" not in line
    low = FeatureSpec(sample_rate=16000, low_freq=2000, high_freq=8000)  # a low_freq above 1 kHz
    [line] = band_warnings(powers(folders[1000], low), low)
    assert "below 2000 Hz" in line and "features.low_freq" in line


def test_a_folder_without_sounds_or_labels_has_nothing_to_measure(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "room"
    encode(folder / "audio.mp3", murmur(10.0, rng), RATE)
    spec = FeatureSpec(sample_rate=16000, high_freq=8000)
    assert label_band_power(AudioDirectory(folder), spec, ["negative"], duration=10.0) == {}
    (folder / "labels.json").write_text(json.dumps({"00:00": "negative"}))
    assert label_band_power(AudioDirectory(folder), spec, ["negative"], duration=10.0) == {}
    assert BandPower().outside_share == 0.0


def test_a_sound_first_heard_after_the_head_is_found_by_a_seek(folders, monkeypatch) -> None:
    from micmon.dataset import band

    spec = FeatureSpec(sample_rate=16000, high_freq=8000)
    whole = powers(folders[9000], spec)["alarm"]
    monkeypatch.setattr(band, "HEAD_SECONDS", 5.0)  # the background's start is read, the alarms sought
    sought = powers(folders[9000], spec)["alarm"]
    assert sought.outside_share > 0.8  # one alarm against 5 s of background: a rougher figure
    assert abs(sought.outside_share - whole.outside_share) < 0.1
