"""micmon.features: Hz-correct bands, window-length independence, mono mixing, scales, logmel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from micmon.errors import ParameterError
from micmon.features import (
    LOG_FLOOR_DB,
    LOG_RANGE_DB,
    FeatureSpec,
    compute,
    compute_batch,
    dbfs,
    spectrum,
    to_float_mono,
)

RATES = (16000, 22050, 44100, 48000)
WINDOWS = (0.5, 1.0, 2.0, 3.0)
LOW, HIGH, BINS = 250.0, 7500.0, 100
#: Tones near the range's low edge, in the middle, and near its high edge (none near a band edge).
TONES = (260.0, 1000.0, 2900.0, 5000.0, 7490.0)


def tone(freq: float, seconds: float, rate: int, *, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A float32 sine of `freq` Hz."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def band_of(freq: float, low: float = LOW, high: float = HIGH, bins: int = BINS) -> int:
    return int((freq - low) / (high - low) * bins)


def spec_for(rate: int, window: float, **kw: object) -> FeatureSpec:
    options: dict[str, object] = dict(
        sample_rate=rate, window_seconds=window, low_freq=LOW, high_freq=HIGH, bins=BINS
    )
    options.update(kw)
    return FeatureSpec(**options)  # type: ignore[arg-type]


# -- Hz-correct bands (pitfall 3) --------------------------------------------------------------------
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("window", WINDOWS)
def test_tone_lands_in_the_band_containing_its_frequency(rate: int, window: float) -> None:
    spec = spec_for(rate, window)
    windows = np.stack([as_int16(tone(f, window, rate)) for f in TONES])
    features = compute_batch(windows, spec)
    assert features.shape == (len(TONES), BINS)
    for f, row in zip(TONES, features, strict=True):
        peak = int(row.argmax())
        assert peak == band_of(f), f"{f} Hz at {rate} Hz, {window} s window: peak in band {peak}"
        # The tone stands far above the other bands (30 dB on the log scale).
        assert row[peak] - np.median(row) > 0.3


def test_five_khz_tone_in_two_second_windows_is_not_lost() -> None:
    # The original analysed 125-3750 Hz for "250-7500" with 2 s windows and saw nothing here.
    spec = spec_for(44100, 2.0, scale="linear")
    row = compute(as_int16(tone(5000.0, 2.0, 44100)), spec)
    assert row.argmax() == band_of(5000.0)
    assert row.max() > 100 * np.median(row)


# -- normalisation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["log", "linear"])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_band_level_does_not_depend_on_window_length(scale: str, rate: int) -> None:
    levels = []
    for window in WINDOWS:
        row = compute(tone(1000.0, window, rate), spec_for(rate, window, scale=scale))
        levels.append(row[band_of(1000.0)])
    if scale == "log":
        np.testing.assert_allclose(levels, levels[0], atol=0.005)  # 0.5 dB
    else:
        np.testing.assert_allclose(levels, levels[0], rtol=0.05)


def test_noise_level_does_not_depend_on_window_length() -> None:
    rng = np.random.default_rng(0)
    means = []
    for window in WINDOWS:
        noise = (0.1 * rng.standard_normal(int(window * 16000))).astype(np.float32)
        means.append(float(compute(noise, spec_for(16000, window, bins=20)).mean()))
    np.testing.assert_allclose(means, means[0], atol=0.01)


def test_log_scale_maps_decibels_of_the_linear_density() -> None:
    rng = np.random.default_rng(1)
    x = (0.05 * rng.standard_normal(16000) + tone(3000.0, 1.0, 16000)).astype(np.float32)
    linear = compute(x, spec_for(16000, 1.0, scale="linear"))
    log = compute(x, spec_for(16000, 1.0, scale="log"))
    assert linear.dtype == log.dtype == np.float32
    assert (linear > 0).all()
    expected = (20 * np.log10(linear.astype(np.float64)) - LOG_FLOOR_DB) / LOG_RANGE_DB
    np.testing.assert_allclose(log, expected, atol=1e-4)


def test_log_scale_floors_digital_silence_at_zero() -> None:
    row = compute(np.zeros(16000, dtype=np.int16), spec_for(16000, 1.0))
    np.testing.assert_array_equal(row, 0.0)
    assert compute(np.zeros(16000, dtype=np.int16), spec_for(16000, 1.0, scale="linear")).max() == 0


def test_a_gain_change_moves_log_features_by_a_constant() -> None:
    # Pitfall 12: raw magnitudes moved every feature by a different amount.
    rng = np.random.default_rng(2)
    x = 0.05 * rng.standard_normal(44100) + tone(3000.0, 1.0, 44100, amplitude=0.3)
    spec = spec_for(44100, 1.0)
    loud = compute(x.astype(np.float32), spec)
    quiet = compute((0.25 * x).astype(np.float32), spec)
    shift = 20 * np.log10(0.25) / LOG_RANGE_DB
    np.testing.assert_allclose(quiet - loud, shift, atol=1e-4)


def test_linear_scale_scales_with_gain() -> None:
    x = tone(2000.0, 1.0, 22050)
    spec = spec_for(22050, 1.0, scale="linear")
    np.testing.assert_allclose(compute(0.5 * x, spec), 0.5 * compute(x, spec), rtol=1e-4, atol=1e-12)


def test_int16_and_float_inputs_agree() -> None:
    x = tone(1500.0, 1.0, 16000)
    spec = spec_for(16000, 1.0)
    a, b = compute(x, spec), compute(as_int16(x), spec)
    peak = band_of(1500.0)
    assert a[peak] == pytest.approx(b[peak], abs=1e-3)


# -- channels (pitfall 8) ----------------------------------------------------------------------------
def interleave(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.stack([left, right], axis=-1).reshape(-1)


@pytest.mark.parametrize("window", [0.5, 2.0])
def test_stereo_window_is_mixed_to_mono_not_interleaved(window: float) -> None:
    x = as_int16(tone(3000.0, window, 44100))
    mono = compute(x, spec_for(44100, window))
    stereo = compute(interleave(x, x), spec_for(44100, window, channels=2))
    np.testing.assert_allclose(stereo, mono, atol=1e-6)
    # Read as one channel, the interleave is twice as long and would not fit the spec.
    with pytest.raises(ParameterError, match="window: got"):
        compute(interleave(x, x), spec_for(44100, window))


def test_stereo_channels_with_different_tones_both_show() -> None:
    left, right = tone(1000.0, 1.0, 16000), tone(5000.0, 1.0, 16000)
    row = compute(interleave(left, right), spec_for(16000, 1.0, channels=2))
    top2 = set(np.argsort(row)[-2:].tolist())
    assert top2 == {band_of(1000.0), band_of(5000.0)}


def test_to_float_mono() -> None:
    x = np.array([32767, -32768, 0, 16384], dtype=np.int16)
    np.testing.assert_allclose(to_float_mono(x), [32767 / 32768, -1.0, 0.0, 0.5])
    np.testing.assert_allclose(to_float_mono(x, 2), [(32767 / 32768 - 1) / 2, 0.25])
    with pytest.raises(ParameterError, match="3 interleaved samples do not split into 2 channels"):
        to_float_mono(np.zeros(3, dtype=np.int16), 2)


def test_dbfs() -> None:
    assert dbfs(np.zeros(10, dtype=np.int16)) == float("-inf")
    assert dbfs(np.array([], dtype=np.int16)) == float("-inf")
    # A full-scale sine is -3.01 dBFS.
    assert dbfs(tone(1000.0, 1.0, 16000, amplitude=1.0)) == pytest.approx(-3.01, abs=0.02)


# -- logmel ------------------------------------------------------------------------------------------
def mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_band_edges(low: float, high: float, bands: int) -> np.ndarray:
    m = np.linspace(mel(low), mel(high), bands + 2)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_logmel_shape_and_tone_placement(rate: int) -> None:
    spec = FeatureSpec(
        sample_rate=rate, window_seconds=1.0, low_freq=50, high_freq=7000, feature="logmel", mel_bands=40
    )
    frame = int(round(0.025 * rate))
    hop = int(round(0.010 * rate))
    assert spec.shape == (1 + (rate - frame) // hop, 40)
    edges = mel_band_edges(50, 7000, 40)
    for f in (440.0, 3000.0, 6000.0):
        features = compute(as_int16(tone(f, 1.0, rate)), spec)
        assert features.shape == spec.shape
        peak = int(features.mean(axis=0).argmax())
        # The peak band's triangle (left edge .. right edge) covers f.
        assert edges[peak] <= f <= edges[peak + 2], (f, peak, edges[peak : peak + 3])
        # Every frame sees the same steady tone.
        assert (features.argmax(axis=1) == peak).mean() > 0.95


def test_logmel_level_does_not_depend_on_window_length() -> None:
    levels = []
    for window in (0.5, 1.0, 2.0):
        spec = FeatureSpec(
            sample_rate=16000, window_seconds=window, low_freq=50, high_freq=7000, feature="logmel"
        )
        levels.append(float(compute(tone(1000.0, window, 16000), spec).max(axis=1).mean()))
    np.testing.assert_allclose(levels, levels[0], atol=0.005)


# -- batch = per window ------------------------------------------------------------------------------
@pytest.mark.parametrize("feature", ["spectrum", "logmel"])
@pytest.mark.parametrize("scale", ["log", "linear"])
def test_compute_batch_equals_per_window_compute(feature: str, scale: str) -> None:
    rng = np.random.default_rng(3)
    spec = FeatureSpec(
        sample_rate=16000,
        window_seconds=0.5,
        low_freq=100,
        high_freq=7000,
        bins=50,
        scale=scale,
        feature=feature,
    )  # type: ignore[arg-type]
    windows = as_int16(0.2 * rng.standard_normal((5, spec.window_samples)))
    batch = compute_batch(windows, spec)
    assert batch.shape == (5, *spec.shape)
    for i, w in enumerate(windows):
        np.testing.assert_allclose(batch[i], compute(w, spec), rtol=1e-5, atol=1e-6)
    if feature == "spectrum":
        np.testing.assert_allclose(batch[0], spectrum(windows[0], spec), rtol=1e-6)


# -- FeatureSpec ---------------------------------------------------------------------------------------
def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec(
        sample_rate=22050,
        window_seconds=1.5,
        low_freq=100,
        high_freq=9000,
        bins=64,
        scale="linear",
        hop_seconds=0.5,
    )
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert FeatureSpec.from_dict({**spec.to_dict(), "future_key": 1}) == spec
    assert spec.window_samples == 33075
    assert spec.hop_samples == 11025
    assert spec.with_(bins=32).bins == 32


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("window", WINDOWS)
def test_bins_up_to_the_fft_resolution_are_accepted_and_beyond_refused(rate: int, window: float) -> None:
    low, high = 20.0, rate / 2
    resolution = rate / int(round(window * rate))
    most = int((high - low) // resolution)
    for bins in (most - 1, most):  # the limit the error message recommends must work too
        spec = FeatureSpec(sample_rate=rate, window_seconds=window, low_freq=low, high_freq=high, bins=bins)
        row = compute(tone(1000.0, window, rate), spec)
        assert row.shape == (bins,)
        assert np.isfinite(row).all()
    with pytest.raises(ParameterError, match=f"use at most {most} bins"):
        spec.with_(bins=most + 1)


def test_the_most_bins_validate_allows_can_be_computed() -> None:
    spec = FeatureSpec(
        sample_rate=16000, window_seconds=0.5, low_freq=LOW, high_freq=HIGH, bins=3625
    )  # the limit the error message recommends ("use at most 3625")
    row = compute(tone(1000.0, 0.5, 16000), spec)
    assert row.shape == (3625,)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (dict(low_freq=7500, high_freq=250), r"low_freq \(7500 Hz\) must be below high_freq \(250 Hz\)"),
        (dict(low_freq=1000, high_freq=1000), r"low_freq \(1000 Hz\) must be below high_freq"),
        (dict(low_freq=-5), r"low_freq: must be >= 0 Hz, got -5"),
        (
            dict(high_freq=9000),
            r"high_freq: 9000 Hz is above the Nyquist frequency \(8000 Hz\) of "
            r"a 16000 Hz sample rate",
        ),
        (
            dict(bins=5000),
            r"bins: 5000 bands of 250-7500 Hz are narrower than the 2 Hz FFT "
            r"resolution of a 0.5 s window; use at most 3625 bins",
        ),
        (dict(bins=0), r"bins: must be a positive integer, got 0"),
        (dict(scale="db"), r"scale: must be one of log, linear, got 'db'"),
        (dict(feature="mfcc"), r"feature: must be one of spectrum, logmel, got 'mfcc'"),
        (dict(sample_rate=0), r"sample_rate: must be a positive integer \(Hz\), got 0"),
        (dict(sample_rate=16000.0), r"sample_rate: must be a positive integer"),
        (dict(channels=0), r"channels: must be a positive integer, got 0"),
        (dict(window_seconds=0), r"window_seconds: must be > 0 seconds, got 0"),
        (
            dict(hop_seconds=-1),
            r"hop_seconds: seconds between window starts must be > 0 and at most the window",
        ),
        (dict(feature="logmel", mel_bands=0), r"mel_bands: must be a positive integer, got 0"),
        (dict(feature="logmel", frame_seconds=1.0), r"frame_seconds: must be > 0 and <= the window"),
        (dict(feature="logmel", frame_seconds=0.0005), r"frame_seconds: 0.0005 s is under 16 samples"),
    ],
)
def test_bad_specs_are_rejected_with_the_parameter_and_value(
    options: dict[str, object], pattern: str
) -> None:
    base: dict[str, object] = dict(
        sample_rate=16000, window_seconds=0.5, low_freq=LOW, high_freq=HIGH, bins=BINS
    )
    base.update(options)
    with pytest.raises(ParameterError, match=pattern) as caught:
        FeatureSpec(**base)  # type: ignore[arg-type]
    # The error carries the parameter at fault (what the config maps to its key), not only text.
    assert caught.value.parameter == pattern.split(":")[0].split(" ")[0]


def test_wrong_window_length_names_the_fix() -> None:
    spec = spec_for(16000, 1.0)
    with pytest.raises(
        ParameterError,
        match=r"window: got 8000 samples, the feature spec wants 16000 "
        r"\(1 s at 16000 Hz\); read the audio with "
        r"window_seconds=1 and sample_rate=16000",
    ):
        compute(np.zeros(8000, dtype=np.int16), spec)


def test_compute_batch_wants_two_dimensions() -> None:
    with pytest.raises(ParameterError, match=r"windows: expected a 2-D array .* got shape \(16000,\)"):
        compute_batch(np.zeros(16000, dtype=np.int16), spec_for(16000, 1.0))


def test_parameter_error_carries_the_value() -> None:
    with pytest.raises(ParameterError) as caught:
        FeatureSpec(bins=0)
    assert (caught.value.parameter, caught.value.value) == ("bins", 0)


@pytest.mark.parametrize("hop_seconds", [0.25, 0.5, 0.30375, 1.0])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_window_features_reuse_frames_and_equal_per_window_features(hop_seconds: float, batch: int) -> None:
    from micmon.features import WindowFeatures

    spec = FeatureSpec(sample_rate=16000, window_seconds=1.0, high_freq=8000.0, feature="logmel")
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(16000 * 6) * 3000).astype(np.int16)
    hop = int(hop_seconds * 16000)
    starts = np.arange(0, len(audio) - spec.window_samples + 1, hop)
    windows = np.stack([audio[s : s + spec.window_samples] for s in starts])
    stream = WindowFeatures(spec)
    parts = [
        stream.compute(windows[i : i + batch], starts[i : i + batch]) for i in range(0, len(starts), batch)
    ]
    assert np.allclose(np.concatenate(parts), compute_batch(windows, spec), atol=1e-5)
    shared = hop % spec.frame_hop_samples == 0
    distinct = len(np.unique(starts[:, None] + np.arange(spec.frames) * spec.frame_hop_samples))
    if shared:  # each frame position transformed once
        assert stream.computed == distinct
    else:  # windows off the frame grid share nothing, and are still right
        assert stream.computed == len(starts) * spec.frames


def test_window_features_of_spectrum_specs_are_per_window() -> None:
    from micmon.features import WindowFeatures

    spec = FeatureSpec(sample_rate=16000, window_seconds=1.0, high_freq=8000.0, bins=20)
    windows = (np.random.default_rng(1).standard_normal((3, 16000)) * 1000).astype(np.int16)
    assert np.allclose(WindowFeatures(spec).compute(windows, [0, 4000, 8000]), compute_batch(windows, spec))


def test_logmel_frames_equal_the_dense_mel_product_across_chunks() -> None:
    from micmon.features import FRAME_CHUNK, _mel_plan, _window, from_power, logmel_frames

    spec = FeatureSpec(sample_rate=16000, high_freq=8000.0, feature="logmel")
    rng = np.random.default_rng(5)
    frames = (0.1 * rng.standard_normal((2 * FRAME_CHUNK + 5, spec.frame_samples))).astype(np.float32)
    win, norm = _window(spec.frame_samples)
    fft = np.fft.rfft(frames.astype(np.float64) * win, n=spec.n_fft, axis=-1)
    power = np.abs(fft) ** 2 * (norm / spec.sample_rate)
    mel = _mel_plan(spec.sample_rate, spec.n_fft, spec.low_freq, spec.high_freq, spec.mel_bands)
    expected = from_power(power @ mel.astype(np.float64), spec.scale)
    np.testing.assert_allclose(logmel_frames(frames, spec), expected, atol=1e-5)
    assert logmel_frames(frames[:6].reshape(2, 3, -1), spec).shape == (2, 3, spec.mel_bands)


def test_window_features_of_interleaved_stereo_equal_per_window_features() -> None:
    from micmon.features import WindowFeatures

    spec = FeatureSpec(sample_rate=16000, channels=2, window_seconds=1.0, high_freq=8000.0, feature="logmel")
    audio = (np.random.default_rng(9).standard_normal((16000 * 4, 2)) * 2000).astype(np.int16)
    starts = np.arange(0, len(audio) - spec.window_samples + 1, 4000)
    windows = np.stack([audio[s : s + spec.window_samples].reshape(-1) for s in starts])
    stream = WindowFeatures(spec)
    parts = [stream.compute(windows[i : i + 4], starts[i : i + 4]) for i in range(0, len(starts), 4)]
    assert np.allclose(np.concatenate(parts), compute_batch(windows, spec), atol=1e-5)
