"""Per-channel energy normalisation (PCEN) as the CNN's first layer, on stored log-mel windows.

PCEN divides each band's energy by a smoothed version of itself (an automatic gain control per
band, time constant `PCEN_TIME_CONSTANT`) and compresses the result with a root instead of a log:
steady sounds (a fan, the room's hum, a microphone's colouring) flatten out and onsets stand out.
It lives inside the network, so datasets, augmentation and the streaming front end stay log-mel,
and the .tflite model carries it: serving needs nothing new. The smoother starts each window at
its first frame's energy, so a window's output depends on that window alone (as every feature
here does). Importing this module imports Keras: only the training path and Keras model loading
do.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from micmon.features import LOG_FLOOR_DB, LOG_RANGE_DB

#: Smoother time constant (s) ...
PCEN_TIME_CONSTANT = 0.4
#: ... gain normalisation exponent, bias and root (Wang et al. 2017; librosa's defaults).
PCEN_ALPHA = 0.98
PCEN_DELTA = 2.0
PCEN_ROOT = 0.5
#: Energies are taken relative to this band level (dB per Hz; white noise at about -26 dBFS) ...
PCEN_REFERENCE_DB = -65.0
#: ... and this floor keeps silent bands from being amplified (about -86 dBFS).
PCEN_EPSILON = 1e-6


def smoother_matrix(
    frames: int, frame_hop_seconds: float, time_constant: float = PCEN_TIME_CONSTANT
) -> np.ndarray:
    """Return the (frames, frames) matrix M with smoothed = M @ energy along time (one window)."""
    s = 1.0 - np.exp(-frame_hop_seconds / time_constant)
    t = np.arange(frames)
    lag = t[:, None] - t[None, :]
    m = np.where(lag >= 0, s * (1.0 - s) ** np.maximum(lag, 0), 0.0)
    m[:, 0] += (1.0 - s) ** (t + 1)  # the smoother starts at the first frame's energy
    out: np.ndarray = m.astype(np.float32)
    return out


@keras.saving.register_keras_serializable(package="micmon")
class PCEN(keras.layers.Layer):  # type: ignore[misc]
    """Keras layer: log-mel windows (frames, bands) in micmon's log scale -> PCEN (frames, bands)."""

    def __init__(
        self,
        frame_hop_seconds: float,
        time_constant: float = PCEN_TIME_CONSTANT,
        alpha: float = PCEN_ALPHA,
        delta: float = PCEN_DELTA,
        root: float = PCEN_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.frame_hop_seconds = float(frame_hop_seconds)
        self.time_constant = float(time_constant)
        self.alpha = float(alpha)
        self.delta = float(delta)
        self.root = float(root)
        self._smoother: Any = None

    def build(self, input_shape: Any) -> None:
        """Make the smoothing matrix for the window's frame count."""
        frames = int(input_shape[1])
        self._smoother = keras.ops.convert_to_tensor(
            smoother_matrix(frames, self.frame_hop_seconds, self.time_constant).T.copy()
        )
        super().build(input_shape)

    def call(self, x: Any) -> Any:
        """Return PCEN of log-scale windows `x`, shape (batch, frames, bands)."""
        ops = keras.ops
        ln10 = float(np.log(10.0))
        db = x * LOG_RANGE_DB + (LOG_FLOOR_DB - PCEN_REFERENCE_DB)
        energy = ops.exp(db * (ln10 / 10.0))
        # (batch, bands, frames) @ M.T: one matrix product, which LiteRT runs as a fully connected op
        smooth = ops.transpose(ops.matmul(ops.transpose(energy, (0, 2, 1)), self._smoother), (0, 2, 1))
        gain = ops.exp(-self.alpha * ops.log(smooth + PCEN_EPSILON))
        y = energy * gain + self.delta
        compressed = ops.sqrt(y) if self.root == 0.5 else ops.power(y, self.root)
        return compressed - self.delta**self.root

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for saving."""
        return {
            **super().get_config(),
            "frame_hop_seconds": self.frame_hop_seconds,
            "time_constant": self.time_constant,
            "alpha": self.alpha,
            "delta": self.delta,
            "root": self.root,
        }
