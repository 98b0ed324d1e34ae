"""AudioDevice: live capture from a microphone (alsa, pulse) or any ffmpeg input format."""

from __future__ import annotations

from micmon.audio.source import AudioSource, window_length
from micmon.errors import ParameterError

#: Device used when none is given, per audio system.
DEFAULT_DEVICES = {"alsa": "default", "pulse": "default"}
#: What to do when a capture device does not open.
DEVICE_HINT = (
    "check the device name: `arecord -l` lists ALSA cards (use plughw:CARD,DEVICE), "
    "`pactl list sources short` lists PulseAudio sources; pass it as --device "
    "(config: audio.device)"
)


class AudioDevice(AudioSource):
    """Windows captured live through `ffmpeg -f <system> -i <device>`.

    ``window_seconds`` is the window length; ``sample_duration``, the original README's name for
    it, is accepted as an alias.
    """

    def __init__(
        self,
        system: str = "alsa",
        device: str | None = None,
        window_seconds: float = 2,
        sample_rate: int = 44100,
        channels: int = 1,
        *,
        hop: float | None = None,
        ffmpeg_bin: str = "ffmpeg",
        input_options: list[str] | None = None,
        sample_duration: float | None = None,
    ) -> None:
        if not system or not isinstance(system, str):
            raise ParameterError(
                f"system: expected an ffmpeg input format such as alsa or pulse, got {system!r}",
                parameter="system",
                value=system,
            )
        device = device or DEFAULT_DEVICES.get(system)
        if not device:
            raise ParameterError(f"device: required for audio system {system!r}", parameter="device")
        self.system = system
        self.device = device
        args = ["-f", system, *(input_options or []), "-i", device]
        super().__init__(
            args,
            window_seconds=window_length(window_seconds, sample_duration),
            sample_rate=sample_rate,
            channels=channels,
            hop=hop,
            ffmpeg_bin=ffmpeg_bin,
            live=True,
            name=f"{system}:{device}",
        )
