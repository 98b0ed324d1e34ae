"""Training-time augmentation on stored feature arrays: random gain and background mixing.

Both feature types are band power densities, so a gain is a shift (log scale) or a factor
(linear scale), and mixing a background window into a positive one is a sum of powers (exact in
expectation for uncorrelated sounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from micmon.errors import ParameterError
from micmon.features import FeatureSpec, band_centres, compute_batch, from_power, to_power

#: Default augmentation: random gain range (+/- dB) ...
AUGMENT_GAIN_DB = 6.0
#: ... probability that a positive window gets a background window mixed in ...
AUGMENT_MIX_PROBABILITY = 0.5
#: ... at this level (dB, background relative to the positive window's own level).
AUGMENT_MIX_LEVEL_DB: tuple[float, float] = (-15.0, 5.0)
#: Band limiting: the cutoff of a copy is drawn from this range (Hz): the bandwidth of 8-16 kHz
#: recordings and cheap microphones ...
BAND_LIMIT_HZ: tuple[float, float] = (3500.0, 8000.0)
#: ... and the bands above it are attenuated by this much (dB).
BAND_LIMIT_DB = 40.0
#: Masks (SpecAugment): each covers up to this share of the frames or bands.
MASK_SHARE = 0.15
#: Pitch shift (logmel): a copy's bands move by up to this many mel bands up or down (about
#: +/- 10 % in pitch per band at 40 bands): another dog, another bell of the same kind.
SHIFT_BANDS = 2
#: Time stretch (logmel): a copy of a sound plays up to this factor faster or slower about the
#: window's centre (a longer howl, a quicker bark): another animal or bell of the same kind.
STRETCH_FACTOR = 1.25
#: Microphone colouring: a copy's bands get a smooth random gain curve (dB), the sum of this many
#: cosines across the band range, each of random sign and size up to EQ_DB / its order: the tilt,
#: bumps and roll-offs of a cheap microphone or a room, which a few recordings cannot show.
EQ_TERMS = 4
EQ_DB = 6.0


def augment(
    features: np.ndarray,
    classes: np.ndarray,
    *,
    spec: FeatureSpec,
    background: Sequence[int] | np.ndarray,
    rng: np.random.Generator | int | None = 0,
    copies: int = 1,
    gain_db: float = AUGMENT_GAIN_DB,
    mix_probability: float = AUGMENT_MIX_PROBABILITY,
    mix_level_db: tuple[float, float] = AUGMENT_MIX_LEVEL_DB,
    background_mix_probability: float = 0.0,
    band_limit_probability: float = 0.0,
    mask_probability: float = 0.0,
    shift_probability: float = 0.0,
    eq_probability: float = 0.0,
    stretch_probability: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the windows plus `copies` augmented copies of each: random gain, background mixing.

    `features` has shape (N, *spec.shape) in `spec.scale`; `classes` holds one class index per
    window (shape (N,)) or one-hot rows (N, labels). Every copy gets a random gain of up to
    +/- `gain_db`; with probability `mix_probability` a copy of a window whose class is not in
    `background` gets a random background window mixed in, `mix_level_db` (low, high) relative
    to its own level; with `background_mix_probability` a copy of a background window gets
    another one mixed in the same way (a sound of the room heard again under other talk, at
    another level, stays background). With `band_limit_probability` a copy loses the bands
    above a random cutoff (`BAND_LIMIT_HZ`), as a low sample rate or a cheap microphone would;
    with `mask_probability` it gets a random time mask and frequency mask (SpecAugment), filled
    with its mean level; with `shift_probability` a logmel copy of a window not in `background`
    moves up or down by up to `SHIFT_BANDS` mel bands (a pitch shift); with `eq_probability` a
    copy gets a smooth random gain curve across its bands (`EQ_DB`, a microphone's colouring);
    with `stretch_probability` a logmel copy of a window not in `background` is stretched or
    squeezed in time about its centre by up to `STRETCH_FACTOR`. Labels are unchanged.
    Returns (features, classes), originals first.
    """
    x = np.asarray(features)
    y = np.asarray(classes)
    if x.shape[1:] != spec.shape:
        raise ParameterError(
            f"features: expected windows of shape {spec.shape} for this spec, got {x.shape[1:]}",
            parameter="features",
            value=x.shape[1:],
        )
    if len(y) != len(x):
        raise ParameterError(
            f"classes: {len(y)} classes for {len(x)} windows; pass one per window", parameter="classes"
        )
    if not isinstance(copies, (int, np.integer)) or copies < 0:
        raise ParameterError(
            f"copies: must be an integer >= 0, got {copies!r}", parameter="copies", value=copies
        )
    if gain_db < 0:
        raise ParameterError(f"gain_db: must be >= 0, got {gain_db!r}", parameter="gain_db", value=gain_db)
    for name, value in (
        ("band_limit_probability", band_limit_probability),
        ("mask_probability", mask_probability),
        ("shift_probability", shift_probability),
        ("eq_probability", eq_probability),
        ("stretch_probability", stretch_probability),
        ("background_mix_probability", background_mix_probability),
    ):
        if not 0.0 <= value <= 1.0:
            raise ParameterError(f"{name}: must be in [0, 1], got {value!r}", parameter=name, value=value)
    if not 0.0 <= mix_probability <= 1.0:
        raise ParameterError(
            f"mix_probability: must be in [0, 1], got {mix_probability!r}",
            parameter="mix_probability",
            value=mix_probability,
        )
    low_db, high_db = mix_level_db
    if low_db > high_db:
        raise ParameterError(
            f"mix_level_db: (low, high) with low <= high, got {mix_level_db!r}",
            parameter="mix_level_db",
            value=mix_level_db,
        )
    if copies == 0 or len(x) == 0:
        return x, y
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    index = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    is_background = np.isin(index, np.asarray(list(background), dtype=np.int64))
    background_rows = np.flatnonzero(is_background)

    power = to_power(x, spec.scale)
    reduce_axes = tuple(range(1, power.ndim))
    level = power.mean(axis=reduce_axes, keepdims=True)  # mean band power per window
    out_x, out_y = [x.astype(np.float32, copy=False)], [y]
    expand = (slice(None),) + (None,) * (power.ndim - 1)
    for _ in range(copies):
        p = power.copy()
        if shift_probability and spec.feature == "logmel":
            _shift(p, (~is_background) & (gen.random(len(x)) < shift_probability), gen)
        if stretch_probability and spec.feature == "logmel":
            _stretch(p, (~is_background) & (gen.random(len(x)) < stretch_probability), gen)
        if background_rows.size:
            draw = gen.random(len(x))
            mix = ((~is_background) & (draw < mix_probability)) | (
                is_background & (draw < background_mix_probability)
            )
            rows = np.flatnonzero(mix)
            if rows.size:
                picks = gen.choice(background_rows, size=rows.size)
                rel_db = gen.uniform(low_db, high_db, size=rows.size)
                bg_level = np.maximum(level[picks], 1e-300)
                factor = (level[rows] / bg_level) * (10.0 ** (rel_db / 10.0))[expand]
                p[rows] = p[rows] + power[picks] * factor
        gains = 10.0 ** (gen.uniform(-gain_db, gain_db, size=len(x)) / 10.0)
        p *= gains[expand]
        if band_limit_probability:
            _band_limit(p, spec, gen.random(len(x)) < band_limit_probability, gen)
        if eq_probability:
            _colour(p, gen.random(len(x)) < eq_probability, gen)
        if mask_probability:
            _mask(p, gen.random(len(x)) < mask_probability, gen)
        out_x.append(from_power(p, spec.scale))
        out_y.append(y)
    return np.concatenate(out_x), np.concatenate(out_y)


#: Mixup: the share of a mixed window's energy that comes from its first window is drawn from
#: Beta(MIXUP_ALPHA, MIXUP_ALPHA): most mixes are mostly one window, some are half and half.
MIXUP_ALPHA = 0.4


def mixup(
    features: np.ndarray,
    classes: np.ndarray,
    *,
    spec: FeatureSpec,
    count: int,
    rng: np.random.Generator | int | None = 0,
    alpha: float = MIXUP_ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return `count` mixes of two random windows each, with a class and a loss weight per row.

    Each mix sums the two windows' powers, each brought to their common (geometric mean) level
    and weighted by its share (`share` ~ Beta(alpha, alpha) for the first, 1 - share for the
    second): two sounds heard at once, each as loud as its share of the mix. A mix of two
    classes is two rows with the same features, one per class, weighted by the classes' shares
    (the loss of a soft label); a mix within one class is one row of weight 1.
    Returns (features, classes, weights); `classes` are indices (N,).
    """
    _check_count(count)
    if alpha <= 0:
        raise ParameterError(f"alpha: must be > 0, got {alpha!r}", parameter="alpha", value=alpha)
    x = np.asarray(features)
    y = np.asarray(classes)
    index = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
    empty = (np.zeros((0, *x.shape[1:]), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if count == 0 or len(x) < 2:
        return empty
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    first = gen.integers(0, len(x), size=count)
    second = (first + gen.integers(1, len(x), size=count)) % len(x)  # never the same window
    share = gen.beta(alpha, alpha, size=count)
    a, b = to_power(x[first], spec.scale), to_power(x[second], spec.scale)
    axes = tuple(range(1, a.ndim))
    level_a = np.maximum(a.mean(axis=axes, keepdims=True), 1e-30)
    level_b = np.maximum(b.mean(axis=axes, keepdims=True), 1e-30)
    expand = (slice(None),) + (None,) * (a.ndim - 1)
    common = np.sqrt(level_a * level_b)
    mixed = (share[expand] * a / level_a + (1.0 - share[expand]) * b / level_b) * common
    mixed_x = from_power(mixed, spec.scale).astype(np.float32)
    same = index[first] == index[second]
    other = np.flatnonzero(~same)
    out_x = np.concatenate([mixed_x, mixed_x[other]])
    out_y = np.concatenate([index[first], index[second][other]])
    weights = np.concatenate([np.where(same, 1.0, share), 1.0 - share[other]]).astype(np.float32)
    return out_x, out_y, weights


def _band_limit(power: np.ndarray, spec: FeatureSpec, rows: np.ndarray, gen: np.random.Generator) -> None:
    """Attenuate, in place, the bands above a random cutoff of each selected window."""
    centres = band_centres(spec)
    for row in np.flatnonzero(rows):
        cutoff = gen.uniform(*BAND_LIMIT_HZ)
        power[row, ..., centres > cutoff] *= 10.0 ** (-BAND_LIMIT_DB / 10.0)


def eq_curves(n: int, bands: int, gen: np.random.Generator) -> np.ndarray:
    """Return `n` smooth random gain curves in dB, shape (n, bands) (see `EQ_TERMS`, `EQ_DB`)."""
    position = np.linspace(0.0, 1.0, bands)
    orders = np.arange(1, EQ_TERMS + 1)
    sizes = gen.uniform(-1.0, 1.0, size=(n, EQ_TERMS)) * (EQ_DB / orders)
    basis = np.cos(np.pi * orders[:, None] * position[None, :])  # (terms, bands)
    curves: np.ndarray = sizes @ basis
    return curves


def _colour(power: np.ndarray, rows: np.ndarray, gen: np.random.Generator) -> None:
    """Multiply, in place, the bands of each selected window by a smooth random gain curve."""
    picked = np.flatnonzero(rows)
    if picked.size == 0:
        return
    factors = 10.0 ** (eq_curves(picked.size, power.shape[-1], gen) / 10.0)
    shape = (picked.size,) + (1,) * (power.ndim - 2) + (power.shape[-1],)
    power[picked] *= factors.reshape(shape)


def _shift(power: np.ndarray, rows: np.ndarray, gen: np.random.Generator) -> None:
    """Move, in place, the bands of each selected (frames, bands) window up or down by a random
    number of bands, repeating the edge band into the space left."""
    for row in np.flatnonzero(rows):
        k = int(gen.integers(-SHIFT_BANDS, SHIFT_BANDS + 1))
        if k == 0:
            continue
        window = power[row]
        if k > 0:
            window[:, k:] = window[:, :-k].copy()
            window[:, :k] = window[:, k : k + 1]
        else:
            window[:, :k] = window[:, -k:].copy()
            window[:, k:] = window[:, k - 1 : k]


def _stretch(power: np.ndarray, rows: np.ndarray, gen: np.random.Generator) -> None:
    """Resample, in place, the frames of each selected (frames, bands) window about its centre
    by a random factor within 1 / `STRETCH_FACTOR` .. `STRETCH_FACTOR` (linear interpolation of
    the power; the edge frames repeat where a squeezed window runs out)."""
    frames = power.shape[1]
    centre = (frames - 1) / 2.0
    offsets = np.arange(frames) - centre
    bound = np.log(STRETCH_FACTOR)
    for row in np.flatnonzero(rows):
        source = np.clip(centre + offsets / np.exp(gen.uniform(-bound, bound)), 0.0, frames - 1.0)
        low = np.floor(source).astype(np.int64)
        high = np.minimum(low + 1, frames - 1)
        weight = (source - low)[:, None]
        window = power[row]
        power[row] = window[low] * (1.0 - weight) + window[high] * weight


def _mask(power: np.ndarray, rows: np.ndarray, gen: np.random.Generator) -> None:
    """Fill, in place, one random run of frames and one of bands of each selected window with its
    mean power (logmel windows are (frames, bands); spectrum windows only get the band mask)."""
    for row in np.flatnonzero(rows):
        window = power[row]
        mean = window.mean()
        bands = window.shape[-1]
        width = int(gen.integers(0, max(1, int(bands * MASK_SHARE)) + 1))
        start = int(gen.integers(0, bands - width + 1))
        window[..., start : start + width] = mean
        if window.ndim == 2:
            frames = window.shape[0]
            width = int(gen.integers(0, max(1, int(frames * MASK_SHARE)) + 1))
            start = int(gen.integers(0, frames - width + 1))
            window[start : start + width, :] = mean


#: Quiet-room windows (`quiet_room_windows`): a night's room as the microphone hears it, its own
#: noise at a random level (dBFS) ...
QUIET_LEVEL_DBFS: tuple[float, float] = (-85.0, -45.0)
#: ... with a random spectral tilt (power ~ f ** tilt: 0 white, -1 pink, -2 brown) ...
QUIET_TILT: tuple[float, float] = (-2.0, 0.5)
#: ... and, this often, mains hum (50 or 60 Hz and its harmonics) over it.
QUIET_HUM_PROBABILITY = 0.3


def _check_count(count: Any) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ParameterError(f"count: must be an integer >= 0, got {count!r}", parameter="count", value=count)


def quiet_room_samples(
    spec: FeatureSpec, count: int, rng: np.random.Generator | int | None = 0
) -> np.ndarray:
    """Return `count` int16 windows (count, samples*channels) of a quiet room: a microphone's own noise.

    Each window is stationary noise of random tilt (`QUIET_TILT`) and level (`QUIET_LEVEL_DBFS`),
    sometimes with mains hum (`QUIET_HUM_PROBABILITY`), rounded to 16-bit samples as a recording
    stores it; multi-channel windows carry the same noise on every channel.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    _check_count(count)
    n, rate = spec.window_samples, spec.sample_rate
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    t = np.arange(n) / rate
    tilt = gen.uniform(*QUIET_TILT, size=(count, 1))
    shape = np.power(np.maximum(freqs, 20.0) / 1000.0, tilt / 2.0)
    noise = np.fft.irfft(np.fft.rfft(gen.standard_normal((count, n)), axis=1) * shape, n=n, axis=1)
    noise /= np.sqrt(np.mean(noise**2, axis=1, keepdims=True))
    for row in np.flatnonzero(gen.random(count) < QUIET_HUM_PROBABILITY):
        mains = float(gen.choice([50.0, 60.0]))
        for harmonic in range(1, 6):
            amplitude = 10 ** (gen.uniform(-20.0, 6.0) / 20.0) / harmonic
            noise[row] += amplitude * np.sin(2 * np.pi * mains * harmonic * t + gen.uniform(0, 2 * np.pi))
        noise[row] /= np.sqrt(np.mean(noise[row] ** 2))
    level = 10 ** (gen.uniform(*QUIET_LEVEL_DBFS, size=(count, 1)) / 20.0)
    samples = np.clip(np.round(noise * level * 32768.0), -32768, 32767).astype(np.int16)
    if spec.channels > 1:
        samples = np.repeat(samples, spec.channels, axis=1)  # interleaved: the same on every channel
    return samples


def quiet_room_windows(
    spec: FeatureSpec, count: int, rng: np.random.Generator | int | None = 0
) -> np.ndarray:
    """Return the features (count, *spec.shape) of `count` quiet-room windows (`quiet_room_samples`).

    Recordings made by day hold talk and clatter, rarely a night's quiet room; a network that
    takes out the level (the relative front end) would otherwise hear a faint hiss as loud as any
    noise-like sound it was taught.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    _check_count(count)
    out = np.empty((count, *spec.shape), dtype=np.float32)
    chunk = max(1, 2**22 // spec.window_samples)  # ~4 M samples at a time
    for first in range(0, count, chunk):
        rows = min(chunk, count - first)
        out[first : first + rows] = compute_batch(quiet_room_samples(spec, rows, gen), spec)
    return out


def augment_dataset(
    dataset: Any,
    *,
    background_labels: Sequence[str] = ("negative",),
    copies: int = 1,
    seed: int = 0,
    **options: Any,
) -> Any:
    """Return a Dataset whose training windows are augmented (see `augment`); validation unchanged.

    `background_labels` names the classes mixed into the others (labels not in the dataset are
    ignored); `options` go to `augment` (gain_db, mix_probability, mix_level_db,
    background_mix_probability, band_limit_probability, mask_probability, shift_probability,
    eq_probability, stretch_probability).
    """
    if dataset.spec is None:
        raise ParameterError(
            "dataset: has no feature spec; regenerate it with micmon datagen", parameter="dataset"
        )
    labels = list(dataset.labels or [])
    background = [labels.index(name) for name in background_labels if name in labels]
    x, y = augment(
        dataset.train_samples,
        dataset.train_classes,
        spec=dataset.spec,
        background=background,
        rng=seed,
        copies=copies,
        **options,
    )
    return dataset.with_training(x, y)
