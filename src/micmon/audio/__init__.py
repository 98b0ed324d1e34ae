"""Audio input and output: files, devices, sample folders, playback and windows."""

from micmon.audio.device import AudioDevice
from micmon.audio.directory import AudioDirectory
from micmon.audio.ffmpeg import find_ffmpeg, probe_duration
from micmon.audio.file import AudioFile
from micmon.audio.player import AudioPlayer
from micmon.audio.segment import AudioSegment
from micmon.audio.source import AudioSource

__all__ = [
    "AudioDevice",
    "AudioDirectory",
    "AudioFile",
    "AudioPlayer",
    "AudioSegment",
    "AudioSource",
    "find_ffmpeg",
    "probe_duration",
]
