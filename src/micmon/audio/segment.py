"""AudioSegment: one window of PCM audio with its label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from micmon._plot import pyplot
from micmon.features import (
    DEFAULT_HIGH_FREQ,
    DEFAULT_LOW_FREQ,
    FeatureSpec,
    Scale,
    compute,
    dbfs,
    to_float_mono,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The original micmon's default upper cutoff; clamped to the Nyquist frequency of the audio.


class AudioSegment:
    """One window of 16-bit PCM audio (interleaved if multi-channel), with its label and position."""

    def __init__(
        self,
        data: bytes | bytearray | memoryview | np.ndarray,
        sample_rate: int,
        channels: int = 1,
        label: str | None = None,
        start: float = 0.0,
    ) -> None:
        if isinstance(data, np.ndarray) and np.issubdtype(data.dtype, np.floating):
            # Float samples are taken as [-1, 1] audio, not truncated to integers.
            scaled = np.clip(np.asarray(data, dtype=np.float64), -1.0, 1.0) * 32767.0
            self.audio = np.round(scaled).astype(np.int16).reshape(-1)
        elif isinstance(data, np.ndarray):
            self.audio = np.ascontiguousarray(data, dtype=np.int16).reshape(-1)
        else:
            self.audio = np.frombuffer(bytes(data), dtype="<i2").astype(np.int16)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.label = label
        self.start = float(start)

    def __repr__(self) -> str:
        return (
            f"AudioSegment(start={self.start:.3f}, duration={self.duration:.3f}, "
            f"rate={self.sample_rate}, channels={self.channels}, label={self.label!r})"
        )

    @property
    def raw(self) -> bytes:
        """The audio as s16le bytes."""
        return self.audio.astype("<i2").tobytes()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / (self.sample_rate * self.channels)

    @property
    def end(self) -> float:
        """End time in seconds from the start of the source."""
        return self.start + self.duration

    @property
    def samples(self) -> np.ndarray:
        """The audio as float32 in [-1, 1], channels mixed to mono."""
        return to_float_mono(self.audio, self.channels)

    @property
    def dbfs(self) -> float:
        """RMS level in dBFS."""
        return dbfs(self.audio)

    def feature_spec(
        self,
        low_freq: float | None = None,
        high_freq: float | None = None,
        bins: int = 100,
        scale: Scale = "log",
        **extra: Any,
    ) -> FeatureSpec:
        """Return the FeatureSpec of this window's format with the given cutoffs."""
        nyquist = self.sample_rate / 2
        return FeatureSpec(
            sample_rate=self.sample_rate,
            channels=self.channels,
            window_seconds=len(self.audio) / self.channels / self.sample_rate,
            low_freq=DEFAULT_LOW_FREQ if low_freq is None else low_freq,
            high_freq=min(DEFAULT_HIGH_FREQ, nyquist) if high_freq is None else high_freq,
            bins=bins,
            scale=scale,
            **extra,
        )

    def features(self, spec: FeatureSpec) -> np.ndarray:
        """Return this window's features as defined by `spec`."""
        return compute(self.audio, spec)

    def spectrum(
        self,
        low_freq: float | None = None,
        high_freq: float | None = None,
        bins: int = 100,
        scale: Scale = "log",
    ) -> np.ndarray:
        """Return the band spectrum of this window between low_freq and high_freq Hz."""
        return self.features(self.feature_spec(low_freq, high_freq, bins, scale))

    def plot_audio(self, *, show: bool = True) -> Figure:
        """Plot the waveform (matplotlib) and return the figure."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(10, 3))
        t = self.start + np.arange(len(self.audio) // self.channels) / self.sample_rate
        ax.plot(t, self.samples, linewidth=0.5)
        ax.set(
            xlabel="time (s)",
            ylabel="amplitude",
            ylim=(-1, 1),
            title=f"{self.start:.2f}-{self.end:.2f} s ({self.label or 'unlabelled'})",
        )
        return _finish(plt, fig, show)

    def plot_spectrum(
        self,
        low_freq: float | None = None,
        high_freq: float | None = None,
        bins: int = 100,
        scale: Scale = "log",
        *,
        show: bool = True,
    ) -> Figure:
        """Plot the band spectrum (matplotlib) and return the figure."""
        spec = self.feature_spec(low_freq, high_freq, bins, scale)
        values = self.features(spec)
        edges = np.linspace(spec.low_freq, spec.high_freq, spec.bins + 1)
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.bar(edges[:-1], values, width=np.diff(edges), align="edge")
        ax.set(
            xlabel="frequency (Hz)",
            ylabel=f"band level ({scale})",
            title=f"spectrum {self.start:.2f}-{self.end:.2f} s ({self.label or 'unlabelled'})",
        )
        return _finish(plt, fig, show)


def _finish(plt: Any, fig: Figure, show: bool) -> Figure:
    fig.tight_layout()
    if show:
        plt.show()
        plt.close(fig)
    return fig
