"""micmon.model.augment: gain and background mixing on stored features."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import beep_windows
from micmon.errors import ParameterError
from micmon.features import FeatureSpec, compute_batch, from_power, to_power
from micmon.model.augment import EQ_DB, EQ_TERMS, SHIFT_BANDS, STRETCH_FACTOR, augment, mixup

RATE = 16000
BEEP_HZ = 3000.0
LOGMEL = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, feature="logmel")
SPECTRUM = FeatureSpec(sample_rate=RATE, window_seconds=1.0, high_freq=8000.0, bins=50)
LABELS = ["negative", "positive"]


def sounds_then_background(sounds: int, background: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel windows of `sounds` beeps (class 1) then `background` noise windows (class 0)."""
    rng = np.random.default_rng(seed)
    windows = [
        beep_windows(sounds, positive=True, rng=rng),
        beep_windows(background, positive=False, rng=rng),
    ]
    return compute_batch(np.concatenate(windows), LOGMEL), np.array([1] * sounds + [0] * background)


# -- augmentation ----------------------------------------------------------------------------------
def test_augment_gain_shifts_log_features_and_keeps_labels() -> None:
    rng = np.random.default_rng(1)
    x = compute_batch(beep_windows(4, positive=False, rng=rng), LOGMEL)
    y = np.zeros(4, dtype=np.int64)
    ax, ay = augment(x, y, spec=LOGMEL, background=[0], copies=2, gain_db=6.0, mix_probability=0.0)
    assert ax.shape == (12, *LOGMEL.shape) and ay.tolist() == [0] * 12
    np.testing.assert_array_equal(ax[:4], x)
    shift = ax[4:8] - x  # a gain is a constant shift on the log scale, within +/- 6 dB
    assert np.allclose(shift, shift[:, :1, :1], atol=1e-4)
    assert np.all(np.abs(shift) <= 0.06 + 1e-6)


def test_augment_mixes_background_into_positives_only() -> None:
    x, y = sounds_then_background(3, 3, seed=2)
    ax, _ = augment(
        x, y, spec=LOGMEL, background=[0], copies=1, gain_db=0.0, mix_probability=1.0, mix_level_db=(0.0, 0.0)
    )
    assert np.all(ax[6:9] >= x[:3] - 1e-5) and np.any(ax[6:9] > x[:3] + 1e-3)  # power added
    np.testing.assert_allclose(ax[9:], x[3:], atol=1e-5)  # background windows untouched


def test_augment_mixes_background_into_background_when_asked() -> None:
    x, y = sounds_then_background(3, 3, seed=2)
    plain, _ = augment(x, y, spec=LOGMEL, background=[0], copies=1, gain_db=0.0, mix_probability=0.0)
    ax, ay = augment(
        x,
        y,
        spec=LOGMEL,
        background=[0],
        copies=1,
        gain_db=0.0,
        mix_probability=0.0,
        background_mix_probability=1.0,
        mix_level_db=(0.0, 0.0),
    )
    assert ay.tolist() == y.tolist() * 2  # still background: the labels are unchanged
    np.testing.assert_allclose(ax[6:9], x[:3], atol=1e-5)  # sounds untouched (mix_probability 0)
    mixed = ax[9:]
    assert np.all(mixed >= x[3:] - 1e-5) and np.any(mixed > x[3:] + 1e-3)  # another window's power
    # each background copy is itself plus one background window (never a sound) brought to its
    # own mean level (0 dB): a sum of band powers
    power = to_power(x[3:], LOGMEL.scale)
    for row in range(3):
        sums = [power[row] + power[j] * power[row].mean() / power[j].mean() for j in range(3)]
        assert any(np.allclose(mixed[row], from_power(s, LOGMEL.scale), atol=1e-4) for s in sums)
    np.testing.assert_array_equal(plain[9:], x[3:])  # off by default: background copies untouched


def test_augment_linear_scale_gain_is_a_factor() -> None:
    x = compute_batch(
        beep_windows(2, positive=True, rng=np.random.default_rng(3)), SPECTRUM.with_(scale="linear")
    )
    ax, _ = augment(
        x, np.array([1, 1]), spec=SPECTRUM.with_(scale="linear"), background=[0], mix_probability=0.0
    )
    ratio = ax[2:] / np.maximum(x, 1e-12)
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"copies": -1}, "copies: must be an integer >= 0"),
        ({"gain_db": -1.0}, "gain_db: must be >= 0"),
        ({"mix_probability": 1.5}, "mix_probability: must be in"),
        ({"background_mix_probability": -0.1}, "background_mix_probability: must be in"),
        ({"mix_level_db": (5.0, -5.0)}, "mix_level_db"),
    ],
)
def test_augment_rejects_bad_options(kwargs: dict, message: str) -> None:
    x = np.zeros((2, *LOGMEL.shape), dtype=np.float32)
    with pytest.raises(ParameterError, match=message):
        augment(x, np.array([0, 1]), spec=LOGMEL, background=[0], **kwargs)


def test_augment_rejects_wrong_shapes() -> None:
    with pytest.raises(ParameterError, match="features: expected windows of shape"):
        augment(np.zeros((2, 7)), np.array([0, 1]), spec=LOGMEL, background=[0])
    with pytest.raises(ParameterError, match="classes: 1 classes for 2 windows"):
        augment(np.zeros((2, *LOGMEL.shape)), np.array([0]), spec=LOGMEL, background=[0])


def test_band_limit_attenuates_only_bands_above_the_cutoff() -> None:
    from micmon.features import band_centres

    rng = np.random.default_rng(5)
    x = compute_batch(beep_windows(4, positive=True, rng=rng), LOGMEL)
    ax, _ = augment(
        x,
        np.ones(4),
        spec=LOGMEL,
        background=[0],
        copies=1,
        gain_db=0.0,
        mix_probability=0.0,
        band_limit_probability=1.0,
    )
    centres = band_centres(LOGMEL)
    low, high = centres < 3500, centres > 8000 * 0.99
    assert np.allclose(ax[4:][..., low], x[..., low], atol=1e-6)  # below any cutoff: untouched
    # 40 dB less power is 0.4 log units lower (100 dB per unit on the log scale)
    assert np.all(ax[4:][..., high] < x[..., high] - 0.3)


def test_masks_fill_a_run_of_frames_and_of_bands_with_the_mean() -> None:
    rng = np.random.default_rng(6)
    x = compute_batch(beep_windows(8, positive=True, rng=rng), LOGMEL)
    ax, _ = augment(
        x,
        np.ones(8),
        spec=LOGMEL,
        background=[0],
        copies=1,
        gain_db=0.0,
        mix_probability=0.0,
        mask_probability=1.0,
        rng=3,
    )
    frames, bands = LOGMEL.shape
    most = int(frames * 0.15) * bands + int(bands * 0.15) * frames  # one run of each, at most
    changed = ~np.isclose(ax[8:], x)
    assert changed.any()
    assert all(0 < n <= most for n in changed.reshape(8, -1).sum(axis=1) if n)
    with pytest.raises(ParameterError, match="mask_probability: must be in"):
        augment(x, np.ones(8), spec=LOGMEL, background=[0], mask_probability=2.0)


def test_pitch_shift_moves_the_bands_of_sounds_only() -> None:
    x, y = sounds_then_background(6, 2, seed=7)
    ax, _ = augment(
        x,
        y,
        spec=LOGMEL,
        background=[0],
        copies=1,
        gain_db=0.0,
        mix_probability=0.0,
        shift_probability=1.0,
        rng=1,
    )
    moved = 0
    for original, copy in zip(x[:6], ax[8:14], strict=True):
        # the copy is the original moved by k bands (edge band repeated), |k| <= SHIFT_BANDS
        matches = []
        for k in range(-SHIFT_BANDS, SHIFT_BANDS + 1):
            expected = np.roll(original, k, axis=1)
            if k > 0:
                expected[:, :k] = original[:, :1]
            elif k < 0:
                expected[:, k:] = original[:, -1:]
            if np.allclose(copy, expected, atol=1e-4):
                matches.append(k)
        assert matches, "the copy is not a band shift of the original"
        moved += matches[0] != 0
    assert moved >= 3
    np.testing.assert_allclose(ax[14:], x[6:], atol=1e-5)  # background windows are not shifted
    with pytest.raises(ParameterError, match="shift_probability: must be in"):
        augment(x, y, spec=LOGMEL, background=[0], shift_probability=-0.1)


def test_time_stretch_changes_how_long_a_sound_lasts_about_the_window_centre() -> None:
    frames, bands = LOGMEL.shape
    power = np.full((8, frames, bands), 1e-6)
    start, end = frames // 2 - 20, frames // 2 + 20  # a 40-frame sound centred in each window
    power[:, start:end, :] = 1.0
    x = from_power(power, LOGMEL.scale).astype(np.float32)
    y = np.array([1] * 6 + [0] * 2)
    ax, ay = augment(
        x, y, spec=LOGMEL, background=[0], copies=1, gain_db=0.0, mix_probability=0.0, stretch_probability=1.0
    )
    assert ay.tolist() == y.tolist() * 2
    loud = to_power(ax[8:], LOGMEL.scale).mean(axis=2) > 0.5  # (windows, frames): the sound's frames
    lengths = loud.sum(axis=1)
    centres = [np.flatnonzero(row).mean() for row in loud[:6]]
    # every sound lasts between 40 / 1.25 and 40 * 1.25 frames and stays centred; not all the same
    assert all(40 / STRETCH_FACTOR - 2 <= n <= 40 * STRETCH_FACTOR + 2 for n in lengths[:6])
    assert len(set(lengths[:6].tolist())) > 1
    assert all(abs(c - (frames - 1) / 2) <= 1.5 for c in centres)
    np.testing.assert_allclose(ax[14:], x[6:], atol=1e-5)  # background windows are not stretched
    with pytest.raises(ParameterError, match="stretch_probability: must be in"):
        augment(x, y, spec=LOGMEL, background=[0], stretch_probability=1.5)


def test_colouring_adds_one_smooth_curve_per_window_to_sounds_and_background() -> None:
    x, y = sounds_then_background(3, 3, seed=8)
    ax, ay = augment(
        x, y, spec=LOGMEL, background=[0], copies=1, gain_db=0.0, mix_probability=0.0, eq_probability=1.0
    )
    assert ay.tolist() == y.tolist() * 2
    curves = ax[6:] - x  # log scale: a colouring adds the same gain curve to every frame
    np.testing.assert_allclose(curves, np.broadcast_to(curves[:, :1, :], curves.shape), atol=1e-4)
    curve = curves[:, 0, :]
    bound = EQ_DB * sum(1.0 / k for k in range(1, EQ_TERMS + 1)) / 100.0  # log features are dB / 100
    assert np.all(np.abs(curve) <= bound + 1e-5)
    assert np.all(np.abs(curve).max(axis=1) > 0.005)  # every window (sound or not) is coloured
    assert np.abs(np.diff(curve, axis=1)).max() < 0.25 * np.abs(curve).max()  # smooth across bands
    assert not np.allclose(curve[0], curve[1])  # each window its own microphone
    with pytest.raises(ParameterError, match="eq_probability: must be in"):
        augment(x, y, spec=LOGMEL, background=[0], eq_probability=1.5)


def test_quiet_room_windows_are_a_microphones_hiss_at_night() -> None:
    from micmon.model.augment import QUIET_LEVEL_DBFS, quiet_room_windows

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    windows = quiet_room_windows(spec, 200, rng=3)
    assert windows.shape == (200, *spec.shape) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows, quiet_room_windows(spec, 200, rng=3))  # seeded
    assert quiet_room_windows(spec, 0).shape == (0, *spec.shape)
    # levels spread over the range: mean band power in dB over a window, per window
    power_db = 10 * np.log10(to_power(windows, spec.scale).mean(axis=(1, 2)))
    low, high = QUIET_LEVEL_DBFS
    assert np.ptp(power_db) > 0.7 * (high - low)
    # stationary: a window's frames keep one level (a sound comes and goes; hiss does not)
    frames_db = 10 * np.log10(to_power(windows, spec.scale).mean(axis=2))
    assert float(np.median(frames_db.std(axis=1))) < 2.0
    stereo = FeatureSpec(
        sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel", channels=2
    )
    assert quiet_room_windows(stereo, 3).shape == (3, *stereo.shape)
    with pytest.raises(ParameterError, match="count"):
        quiet_room_windows(spec, -1)


def test_mixup_sums_two_windows_at_their_shares_and_splits_the_label_by_them() -> None:
    x, y = sounds_then_background(6, 6, seed=4)
    mx, my, weights = mixup(x, y, spec=LOGMEL, count=200, rng=np.random.default_rng(5))
    # the first 200 rows are the mixes; a mix of two classes has a second row (one per class),
    # the same features, the other class, the weights the two shares (summing to 1); a mix
    # within a class is one row of weight 1
    assert len(my) == len(weights) == len(mx) > 240
    flat = mx[:200].reshape(200, -1)
    pairs = [int(np.flatnonzero((flat == row.reshape(-1)).all(axis=1))[0]) for row in mx[200:]]
    assert len(set(pairs)) == len(pairs)
    np.testing.assert_allclose(weights[pairs] + weights[200:], 1.0, atol=1e-6)
    assert np.all(my[pairs] != my[200:])
    single = np.setdiff1d(np.arange(200), pairs)
    assert np.all(weights[single] == 1.0) and np.all((weights >= 0.0) & (weights <= 1.0))
    # each mix is a sum of the two windows' powers, both brought to their common level first
    gen = np.random.default_rng(6)
    a, b = x[0], x[8]  # a beep and a background window
    one, classes, share = mixup(np.stack([a, b]), np.array([1, 0]), spec=LOGMEL, count=1, rng=gen)
    pa, pb = to_power(a, "log"), to_power(b, "log")
    s = share[0] if classes[0] == 1 else share[1]  # the beep's share of the mix
    la, lb = pa.mean(), pb.mean()
    expected = (s * pa / la + (1 - s) * pb / lb) * np.sqrt(la * lb)
    np.testing.assert_allclose(to_power(one[0], "log"), expected, rtol=1e-3)
    assert sorted(classes.tolist()) == [0, 1]


def test_mixup_of_nothing_and_bad_alpha() -> None:
    x, y = sounds_then_background(2, 2, seed=7)
    mx, my, weights = mixup(x, y, spec=LOGMEL, count=0)
    assert mx.shape == (0, *LOGMEL.shape) and my.shape == weights.shape == (0,)
    with pytest.raises(ParameterError, match="alpha: must be > 0"):
        mixup(x, y, spec=LOGMEL, count=3, alpha=0.0)
    with pytest.raises(ParameterError, match="count: must be an integer >= 0"):
        mixup(x, y, spec=LOGMEL, count=-1)
