"""Feature extraction shared by training and detection: one `FeatureSpec`, one `compute()`.

Two feature types:

- ``spectrum``: the power spectrum of the whole window, restricted to [low_freq, high_freq] Hz and
  averaged into ``bins`` equal-width bands (the original micmon's feature, with Hz-correct bands).
- ``logmel``: log mel-band energies of short frames across the window, shape (frames, mel_bands).

Band values are power *densities* (power per Hz), so a tone or a noise gives the same value whatever
the window length. ``scale="linear"`` returns their square root (an RMS magnitude density, the
original's semantics); ``scale="log"`` maps decibels onto roughly [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np

from micmon.errors import ParameterError

FeatureType = Literal["spectrum", "logmel"]
Scale = Literal["log", "linear"]

FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)
SCALES: tuple[str, ...] = get_args(Scale)

#: Power density (per Hz) mapped to 0 on the log scale: quieter than any 16-bit recording.
LOG_FLOOR_DB = -140.0
#: Decibels mapped onto one unit of the log scale.
LOG_RANGE_DB = 100.0
_POWER_FLOOR = 10.0 ** (LOG_FLOOR_DB / 10.0)
#: Default analysed band, Hz: the original micmon's cutoffs (high_freq follows Nyquist down).
DEFAULT_LOW_FREQ = 20.0
#: `micmon datagen`'s hop between training windows around the sounds, as a share of the window.
DATAGEN_HOP_FRACTION = 0.25
DEFAULT_HIGH_FREQ = 20000.0
_INT16_FULL_SCALE = 32768.0


def check_hop(hop: Any, window_seconds: float, *, name: str = "hop", gaps: bool = False) -> float:
    """Return `hop`, the seconds between window starts: > 0 and, unless `gaps`, at most the window."""
    number = not isinstance(hop, bool) and isinstance(hop, (int, float, np.integer, np.floating))
    if not number or not 0 < float(hop) or (not gaps and float(hop) > window_seconds):
        limit = "" if gaps else f" and at most the window ({window_seconds:g} s)"
        raise ParameterError(
            f"{name}: seconds between window starts must be > 0{limit}, got {hop!r}",
            parameter=name,
            value=hop,
        )
    return float(hop)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that defines a feature vector; stored in every dataset and model."""

    sample_rate: int = 44100
    channels: int = 1
    window_seconds: float = 2.0
    hop_seconds: float | None = None
    low_freq: float = DEFAULT_LOW_FREQ
    high_freq: float = DEFAULT_HIGH_FREQ
    bins: int = 100
    scale: Scale = "log"
    feature: FeatureType = "spectrum"
    mel_bands: int = 40
    frame_seconds: float = 0.025
    frame_hop_seconds: float = 0.010

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ParameterError naming the first parameter whose value cannot work."""
        if not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate <= 0:
            raise ParameterError(
                f"sample_rate: must be a positive integer (Hz), got {self.sample_rate!r}",
                parameter="sample_rate",
                value=self.sample_rate,
            )
        if not isinstance(self.channels, (int, np.integer)) or self.channels <= 0:
            raise ParameterError(
                f"channels: must be a positive integer, got {self.channels!r}",
                parameter="channels",
                value=self.channels,
            )
        if not self.window_seconds > 0:
            raise ParameterError(
                f"window_seconds: must be > 0 seconds, got {self.window_seconds!r}",
                parameter="window_seconds",
                value=self.window_seconds,
            )
        if self.window_samples < 2:
            raise ParameterError(
                f"window_seconds: {self.window_seconds} s at {self.sample_rate} Hz "
                "is shorter than two samples",
                parameter="window_seconds",
            )
        if self.hop_seconds is not None:
            check_hop(self.hop_seconds, self.window_seconds, name="hop_seconds")
        if self.low_freq < 0:
            raise ParameterError(
                f"low_freq: must be >= 0 Hz, got {self.low_freq}", parameter="low_freq", value=self.low_freq
            )
        if self.low_freq >= self.high_freq:
            raise ParameterError(
                f"low_freq ({self.low_freq:g} Hz) must be below high_freq ({self.high_freq:g} Hz)",
                parameter="low_freq",
            )
        nyquist = self.sample_rate / 2
        if self.high_freq > nyquist:
            raise ParameterError(
                f"high_freq: {self.high_freq:g} Hz is above the Nyquist frequency "
                f"({nyquist:g} Hz) of a {self.sample_rate} Hz sample rate; lower "
                "it or raise the sample rate",
                parameter="high_freq",
            )
        if self.scale not in SCALES:
            raise ParameterError(
                f"scale: must be one of {', '.join(SCALES)}, got {self.scale!r}",
                parameter="scale",
                value=self.scale,
            )
        if self.feature not in FEATURE_TYPES:
            raise ParameterError(
                f"feature: must be one of {', '.join(FEATURE_TYPES)}, got {self.feature!r}",
                parameter="feature",
                value=self.feature,
            )
        if self.feature == "spectrum":
            if not isinstance(self.bins, (int, np.integer)) or self.bins < 1:
                raise ParameterError(
                    f"bins: must be a positive integer, got {self.bins!r}", parameter="bins", value=self.bins
                )
            resolution = self.sample_rate / self.window_samples
            max_bins = int((self.high_freq - self.low_freq) // resolution)
            if self.bins > max_bins:
                raise ParameterError(
                    f"bins: {self.bins} bands of {self.low_freq:g}-{self.high_freq:g} Hz are "
                    f"narrower than the {resolution:.3g} Hz FFT resolution of a "
                    f"{self.window_seconds:g} s window; use at most {max(max_bins, 0)} bins, "
                    "a wider range or a longer window",
                    parameter="bins",
                )
        else:
            if not isinstance(self.mel_bands, (int, np.integer)) or self.mel_bands < 1:
                raise ParameterError(
                    f"mel_bands: must be a positive integer, got {self.mel_bands!r}",
                    parameter="mel_bands",
                    value=self.mel_bands,
                )
            if not 0 < self.frame_seconds <= self.window_seconds:
                raise ParameterError(
                    f"frame_seconds: must be > 0 and <= the window "
                    f"({self.window_seconds:g} s), got {self.frame_seconds!r}",
                    parameter="frame_seconds",
                    value=self.frame_seconds,
                )
            if not 0 < self.frame_hop_seconds:
                raise ParameterError(
                    f"frame_hop_seconds: must be > 0, got {self.frame_hop_seconds!r}",
                    parameter="frame_hop_seconds",
                    value=self.frame_hop_seconds,
                )
            if self.frame_samples < 16:
                raise ParameterError(
                    f"frame_seconds: {self.frame_seconds} s is under 16 samples at {self.sample_rate} Hz",
                    parameter="frame_seconds",
                )
            _mel_plan(self.sample_rate, self.n_fft, self.low_freq, self.high_freq, self.mel_bands)

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def window_samples(self) -> int:
        """Samples (per channel) in one window."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop(self) -> float:
        """Seconds between the starts of consecutive windows."""
        return self.window_seconds if self.hop_seconds is None else self.hop_seconds

    @property
    def hop_samples(self) -> int:
        """Samples (per channel) between the starts of consecutive windows."""
        return max(1, int(round(self.hop * self.sample_rate)))

    @property
    def frame_samples(self) -> int:
        """Samples in one logmel frame."""
        return int(round(self.frame_seconds * self.sample_rate))

    @property
    def frame_hop_samples(self) -> int:
        """Samples between logmel frames."""
        return max(1, int(round(self.frame_hop_seconds * self.sample_rate)))

    @property
    def n_fft(self) -> int:
        """FFT length of one logmel frame (the next power of two)."""
        return 1 << (self.frame_samples - 1).bit_length()

    @property
    def frames(self) -> int:
        """Logmel frames in one window."""
        return 1 + (self.window_samples - self.frame_samples) // self.frame_hop_samples

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one feature array."""
        return (self.bins,) if self.feature == "spectrum" else (self.frames, self.mel_bands)

    def same_features(self, other: FeatureSpec) -> bool:
        """True when windows of both specs hold the same features (the datagen hop may differ)."""
        return replace(self, hop_seconds=None) == replace(other, hop_seconds=None)

    # -- serialisation ------------------------------------------------------------------------
    def with_(self, **changes: Any) -> FeatureSpec:
        """Return a copy with some fields changed (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Return the spec as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Build a spec from `to_dict()` output, ignoring unknown keys from newer versions."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Build a spec from `to_json()` output."""
        return cls.from_dict(json.loads(text))


# -- plans (cached per spec) ----------------------------------------------------------------------
@lru_cache(maxsize=64)
def _band_plan(
    sample_rate: int, n: int, low: float, high: float, bins: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """Return (first FFT bin, band start offsets, bins per band) for Hz-correct bands."""
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    inside = np.flatnonzero((freqs >= low) & (freqs <= high))
    # The epsilon keeps a bin sitting exactly on a band edge in the upper band despite rounding.
    position = (freqs[inside] - low) * bins / (high - low)
    band = np.minimum(np.floor(position + 1e-9).astype(np.int64), bins - 1)
    counts = np.bincount(band, minlength=bins)
    if (counts == 0).any():  # pragma: no cover - excluded by FeatureSpec.validate
        raise ParameterError(
            f"bins: {bins} is too many for {n} samples at {sample_rate} Hz", parameter="bins"
        )
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return int(inside[0]), offsets, counts


@lru_cache(maxsize=16)
def _window(n: int) -> tuple[np.ndarray, float]:
    """Return a Hann window of length n and the factor that turns |FFT|^2 into one-sided power per Hz."""
    w = np.hanning(n + 2)[1:-1].astype(np.float64)  # no zero end-points, so n=2 still works
    return w.astype(np.float32), 2.0 / float(np.sum(w * w))


@lru_cache(maxsize=8)
def _int16_window(n: int) -> np.ndarray:
    """The analysis window of `_window(n)` scaled for int16 samples (full scale -> 1)."""
    out: np.ndarray = _window(n)[0] / _INT16_FULL_SCALE
    return out


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def _mel_plan(sample_rate: int, n_fft: int, low: float, high: float, bands: int) -> np.ndarray:
    """Return a (n_fft//2+1, bands) matrix averaging power density under triangular mel filters."""
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(low), _hz_to_mel(high), bands + 2))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - left) / np.maximum(centre - left, 1e-9)
    down = (right - freqs[None, :]) / np.maximum(right - centre, 1e-9)
    weights = np.clip(np.minimum(up, down), 0.0, None)
    # A band narrower than the FFT resolution gets its nearest bin, so no band is ever empty.
    empty = weights.sum(axis=1) == 0
    if empty.any():
        nearest = np.abs(freqs[None, :] - centre[empty]).argmin(axis=1)
        weights[np.flatnonzero(empty), nearest] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    out: np.ndarray = weights.T.astype(np.float32)
    return out


# -- computation ---------------------------------------------------------------------------------
def band_centres(spec: FeatureSpec) -> np.ndarray:
    """Return the centre frequency in Hz of each band of the features' last axis."""
    low, high = float(spec.low_freq), float(spec.high_freq)
    if spec.feature == "logmel":
        edges = _mel_to_hz(np.linspace(_hz_to_mel(low), _hz_to_mel(high), spec.mel_bands + 2))
        centres: np.ndarray = edges[1:-1]
        return centres
    width = (high - low) / spec.bins
    out: np.ndarray = low + width * (np.arange(spec.bins) + 0.5)
    return out


def to_float_mono(samples: np.ndarray, channels: int = 1) -> np.ndarray:
    """Return float32 samples in [-1, 1], channels mixed to mono; accepts int16 or float, (..., n[*ch])."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / _INT16_FULL_SCALE
    else:
        x = x.astype(np.float32, copy=False)
    if channels > 1:
        if x.shape[-1] % channels:
            raise ParameterError(
                f"channels: {x.shape[-1]} interleaved samples do not split into {channels} channels",
                parameter="channels",
            )
        x = x.reshape(*x.shape[:-1], x.shape[-1] // channels, channels).mean(axis=-1)
    return x


def to_power(features: np.ndarray, scale: str) -> np.ndarray:
    """Return the band power densities (float64) that `features` of this scale were made from."""
    if scale == "linear":
        return np.square(features.astype(np.float64))
    db = features.astype(np.float64) * LOG_RANGE_DB + LOG_FLOOR_DB
    return np.power(10.0, db / 10.0)


def from_power(power: np.ndarray, scale: str) -> np.ndarray:
    """Return float32 features of `scale` for band power densities (per Hz)."""
    out: np.ndarray
    if scale == "linear":
        out = np.sqrt(power, dtype=np.float32)
    else:
        db = 10.0 * np.log10(np.maximum(power, _POWER_FLOOR))
        out = ((db - LOG_FLOOR_DB) / LOG_RANGE_DB).astype(np.float32)
    return out


def _check_length(x: np.ndarray, spec: FeatureSpec) -> None:
    if x.shape[-1] != spec.window_samples:
        raise ParameterError(
            f"window: got {x.shape[-1]} samples, the feature spec wants {spec.window_samples} "
            f"({spec.window_seconds:g} s at {spec.sample_rate} Hz); read the audio with "
            f"window_seconds={spec.window_seconds:g} and sample_rate={spec.sample_rate}",
            parameter="window",
            value=x.shape[-1],
        )


def spectrum_batch(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return band spectra, shape (N, bins), for windows of shape (N, samples*channels)."""
    x = to_float_mono(windows, spec.channels)
    _check_length(x, spec)
    n = spec.window_samples
    win, norm = _window(n)
    first, offsets, counts = _band_plan(
        spec.sample_rate, n, float(spec.low_freq), float(spec.high_freq), int(spec.bins)
    )
    fft = np.fft.rfft(x * win, axis=-1)
    stop = first + int(counts.sum())
    power = (fft.real[..., first:stop] ** 2 + fft.imag[..., first:stop] ** 2) * (norm / spec.sample_rate)
    bands = np.add.reduceat(power, offsets, axis=-1) / counts
    return from_power(bands, spec.scale)


def logmel_batch(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return log-mel energies, shape (N, frames, mel_bands), for windows (N, samples*channels)."""
    windows = np.asarray(windows)
    if spec.channels > 1:
        windows = to_float_mono(windows, spec.channels)
    _check_length(windows, spec)
    out = np.empty((len(windows), spec.frames, int(spec.mel_bands)), dtype=np.float32)
    step = max(1, FRAME_CHUNK // spec.frames)  # windows per chunk of about FRAME_CHUNK frames
    for i in range(0, len(windows), step):
        x = _frame_samples(windows[i : i + step])
        frames = np.lib.stride_tricks.sliding_window_view(x, spec.frame_samples, axis=-1)
        frames = frames[..., : spec.frames * spec.frame_hop_samples : spec.frame_hop_samples, :]
        out[i : i + step] = _logmel_chunk(frames, spec)  # read through the view: no frame copies
    return out


#: Frames transformed together by `logmel_frames`: big enough to amortise numpy's per-call cost,
#: small enough for its FFT buffers (2 MiB) to stay in the CPU cache: 512 beat 256-4096 here.
FRAME_CHUNK = 512


@lru_cache(maxsize=16)
def _mel_sparse(
    sample_rate: int, n_fft: int, low: float, high: float, bands: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Return `_mel_plan` as sparse rows: (first bin, stop bin, bin index, weight, band offsets).

    Each band's weights are one run of FFT bins; band b sums ``power[:, index[o_b:o_b+1]] *
    weight[...]``. Numpy sums these without BLAS: a (frames x 257) @ (257 x 40) product is small
    enough that a multi-threaded BLAS spends more time waking its threads than multiplying (on a
    loaded 2-core machine, 60 us instead of 0.4 us a frame).
    """
    mel = _mel_plan(sample_rate, n_fft, low, high, bands)
    rows = [np.flatnonzero(mel[:, b]) for b in range(bands)]
    used = np.concatenate(rows)
    first, stop = int(used.min()), int(used.max()) + 1
    index = (used - first).astype(np.intp)
    weight = np.concatenate([mel[r, b] for b, r in enumerate(rows)]).astype(np.float32)
    offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows])[:-1])).astype(np.intp)
    return first, stop, index, weight, offsets


def _frame_samples(x: np.ndarray) -> np.ndarray:
    """Mono samples as `_logmel_chunk` takes them: int16 as is (scaled inside the window product,
    no conversion pass), anything else as float32 in [-1, 1]."""
    return x if x.dtype == np.int16 else to_float_mono(x)


def logmel_frames(frames: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return the log-mel features of frames of mono float samples, shape (..., frame_samples)."""
    frames = np.asarray(frames)
    lead = frames.shape[:-1]
    flat = frames.reshape(-1, frames.shape[-1])
    out = np.empty((len(flat), int(spec.mel_bands)), dtype=np.float32)
    for i in range(0, len(flat), FRAME_CHUNK):
        out[i : i + FRAME_CHUNK] = _logmel_chunk(flat[i : i + FRAME_CHUNK], spec)
    return out.reshape(*lead, int(spec.mel_bands))


def _logmel_chunk(frames: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """`logmel_frames` of a few thousand frames (..., frame_samples), possibly a strided view.

    Float frames are samples in [-1, 1]; int16 frames are scaled to it inside the window product
    (no separate conversion pass).
    """
    win, norm = _window(spec.frame_samples)
    if frames.dtype == np.int16:
        win = _int16_window(spec.frame_samples)
    first, stop, index, weight, offsets = _mel_sparse(
        spec.sample_rate, spec.n_fft, float(spec.low_freq), float(spec.high_freq), int(spec.mel_bands)
    )
    # Zero-padded to n_fft in one buffer (rfft's own padding would copy again); float64, which
    # numpy's FFT computes faster than float32.
    buf = np.zeros((*frames.shape[:-1], spec.n_fft), dtype=np.float64)
    np.multiply(frames, win, out=buf[..., : spec.frame_samples])
    fft = np.fft.rfft(buf, axis=-1)[..., first:stop]
    power = np.square(fft.real).astype(np.float32)
    power += np.square(fft.imag)
    weighted = np.take(power, index, axis=-1)
    weighted *= weight
    mel = np.add.reduceat(weighted, offsets, axis=-1)
    mel *= np.float32(norm / spec.sample_rate)
    return from_power(mel, spec.scale)


class WindowFeatures:
    """Features of the windows of one stream, each log-mel frame computed once.

    Overlapping windows (a hop shorter than the window) share most of their frames; `compute`
    takes each window's start as a sample index in the stream, reuses every frame it has already
    computed at that position and computes only the new ones. The result equals `compute_batch`
    of the same windows (to float tolerance) however the windows are batched. Spectrum features
    cover the whole window in one transform, so they are computed window by window. Memory is
    bounded: frames before the earliest window of the latest call are dropped.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._offsets = np.arange(spec.frames, dtype=np.int64) * spec.frame_hop_samples
        self.reset()

    def reset(self) -> None:
        """Forget every frame (call when a new stream starts)."""
        self._keys = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros((0, self.spec.mel_bands), dtype=np.float32)
        self.computed = 0  # frames transformed so far (for benchmarks)

    def at_times(self, windows: np.ndarray, starts: Sequence[float] | np.ndarray) -> np.ndarray:
        """`compute` for windows whose starts are stream times in seconds."""
        first = np.rint(np.asarray(starts, dtype=np.float64) * self.spec.sample_rate).astype(np.int64)
        return self.compute(windows, first)

    def compute(self, windows: np.ndarray, starts: np.ndarray | list[int]) -> np.ndarray:
        """Return features (N, *spec.shape) of windows (N, samples*channels) starting at `starts`."""
        spec = self.spec
        windows = np.asarray(windows)
        if windows.ndim != 2:
            raise ParameterError(
                f"windows: expected a 2-D array (windows, samples), got shape {windows.shape}",
                parameter="windows",
                value=windows.shape,
            )
        first = np.asarray(starts, dtype=np.int64).reshape(-1)
        if len(first) != len(windows):
            raise ParameterError(
                f"starts: {len(first)} starts for {len(windows)} windows",
                parameter="starts",
                value=len(first),
            )
        if spec.feature != "logmel" or len(windows) == 0:
            return compute_batch(windows, spec)
        # Mono int16 stays int16 until its new frames are gathered: converting whole windows
        # would convert each sample once per window holding it.
        x = windows if spec.channels == 1 else to_float_mono(windows, spec.channels)
        _check_length(x, spec)
        keys = first[:, None] + self._offsets[None, :]  # stream sample of every frame
        unique, where, inverse = np.unique(keys, return_index=True, return_inverse=True)
        known = np.searchsorted(self._keys, unique)
        known = np.minimum(known, max(len(self._keys) - 1, 0))
        cached = (
            (len(self._keys) > 0) & (self._keys[known] == unique)
            if len(self._keys)
            else np.zeros(len(unique), dtype=bool)
        )
        rows = np.empty((len(unique), spec.mel_bands), dtype=np.float32)
        if cached.any():
            rows[cached] = self._rows[known[cached]]
        missing = np.flatnonzero(~cached)
        if missing.size:
            window_index, frame_index = np.divmod(where[missing], spec.frames)
            view = np.lib.stride_tricks.sliding_window_view(x, spec.frame_samples, axis=-1)
            new = view[window_index, self._offsets[frame_index]]  # (missing, frame_samples)
            rows[missing] = logmel_frames(_frame_samples(new), spec)
            self.computed += int(missing.size)
        keep = unique >= first.max()  # frames later windows can still share
        self._keys, self._rows = unique[keep], rows[keep]
        out: np.ndarray = rows[inverse.reshape(keys.shape)]
        return out


def score_windows(
    model: Any, windows: np.ndarray, starts: Sequence[float], features: WindowFeatures | None = None
) -> np.ndarray:
    """Return a model's scores (N, labels) for int16 windows (N, samples*channels).

    With `features` (and a model that scores feature arrays, as `Model.scores` does), each window's
    features come from it, frames shared with earlier windows reused; `starts` are the windows'
    stream times in seconds. Other models are asked through ``predict_proba``.
    """
    if features is None or not hasattr(model, "scores"):
        return np.asarray(model.predict_proba(windows), dtype=np.float32)
    return np.asarray(model.scores(features.at_times(windows, starts)), dtype=np.float32)


def compute_batch(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return features of shape (N, *spec.shape) for int16/float windows of shape (N, samples*channels)."""
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise ParameterError(
            f"windows: expected a 2-D array (windows, samples), got shape {windows.shape}",
            parameter="windows",
        )
    if spec.feature == "logmel":
        return logmel_batch(windows, spec)
    return spectrum_batch(windows, spec)


def compute(samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return the features of one window of int16/float samples (interleaved if multi-channel)."""
    out: np.ndarray = compute_batch(np.asarray(samples).reshape(1, -1), spec)[0]
    return out


def spectrum(samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Return the band spectrum, shape (bins,), of one window."""
    out: np.ndarray = spectrum_batch(np.asarray(samples).reshape(1, -1), spec)[0]
    return out


def dbfs(samples: np.ndarray) -> float:
    """Return the RMS level of int16/float samples in dBFS (-inf for digital silence)."""
    x = np.asarray(samples).reshape(-1)
    if x.size == 0:
        return float("-inf")
    # No BLAS: int16 squares summed exactly in int64.
    if x.dtype == np.int16:
        y = x.astype(np.int32)
        np.square(y, out=y)  # at most 2**30: fits int32, and the int64 sum is exact
        power = float(y.sum(dtype=np.int64)) / (_INT16_FULL_SCALE * _INT16_FULL_SCALE)
    else:
        y = x.astype(np.float64)
        power = float(np.einsum("i,i->", y, y))
    rms = float(np.sqrt(power / x.size))
    return 20.0 * float(np.log10(rms)) if rms > 0 else float("-inf")
