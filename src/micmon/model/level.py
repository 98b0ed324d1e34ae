"""The window's log-mel relative to its own mean level, as the CNN's first layer (gain invariance).

A microphone's gain, its distance to the sound and a recording's level move every log-mel value of
a window by the same amount; the networks trained on a few recordings learn the level they were
shown (issue 8's twenty-fourth round: 12 dB quieter, half the events went unheard). This layer
subtracts each window's mean over its frames and bands, so a window and the same window at any
gain give the same input, up to the network's input standardisation before it: that divides each
mel band by its own spread, so a gain moves the bands by slightly different amounts (on the wolf's
networks the spreads are within 0.8-1.15 times their median: 24 dB leaves at most 0.25
standardised units of a gain in a band). `RelativeWithLevel` gives the network that input and the
window's mean level as a second channel: the shape of a sound apart from its loudness, the
loudness still there to learn from (a quiet tonal sound unlike any heard in training need not pass
for the target; issue 8's thirtieth round). Its level channel can stop at a floor (`floor`): a
network trained on targets no quieter than some level reads a much quieter one as a new, unknown
sound (issue 8's thirty-first round: 24 dB quieter, 17 of 66 howls found); with the floor it hears
anything quieter at the floor's level, its shape judged by the relative channel alone. They live
inside the network, so datasets, augmentation and the streaming front end stay log-mel and the
.tflite model carries it. Importing this module imports Keras: only the training path and Keras
model loading do.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="micmon")
class RelativeLevel(keras.layers.Layer):  # type: ignore[misc]
    """Keras layer: log-mel windows (frames, bands) -> the same minus each window's mean value."""

    def call(self, x: Any) -> Any:
        """Return `x` (batch, frames, bands) less each window's mean over frames and bands."""
        return x - keras.ops.mean(x, axis=(1, 2), keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Same shape as the input."""
        return input_shape


@keras.saving.register_keras_serializable(package="micmon")
class RelativeWithLevel(keras.layers.Layer):  # type: ignore[misc]
    """Keras layer: log-mel windows (frames, bands) -> (frames, bands, 2): relative values, mean level.

    With `floor`, the level channel is the mean level or `floor`, whichever is higher.
    """

    def __init__(self, floor: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.floor = None if floor is None else float(floor)

    def call(self, x: Any) -> Any:
        """Return `x` less each window's mean, stacked with that mean (floored) spread over the window."""
        level = keras.ops.mean(x, axis=(1, 2), keepdims=True)
        heard = level if self.floor is None else keras.ops.maximum(level, self.floor)
        return keras.ops.stack([x - level, keras.ops.ones_like(x) * heard], axis=-1)

    def get_config(self) -> dict[str, Any]:
        """The layer's config with its floor."""
        return {**super().get_config(), "floor": self.floor}

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The input's shape with a last axis of two channels."""
        return (*input_shape, 2)
