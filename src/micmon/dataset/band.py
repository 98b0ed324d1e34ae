"""Where a labelled sound lies in frequency, against the band the features analyse.

A network only hears what the features keep: decoded at 16 kHz nothing above 8 kHz reaches it,
and `low_freq` / `high_freq` narrow the band further. An alarm clock that beeps at 8.5 kHz,
labelled and trained on at 16 kHz, leaves the network only its faint remnants below 8 kHz, which
talk or noise there can hide. `datagen` measures, for each label, the power its sound adds to the
recording's background at each frequency (heard at a rate high enough to see past the features'
band) and warns when most of it falls outside the band.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from micmon.audio import AudioDirectory
from micmon.audio.ffmpeg import MONO_FILTER, find_ffmpeg, pcm_pipe_args
from micmon.features import FeatureSpec

#: Rate the sound is heard at for this check: 48 kHz sees everything a microphone records.
CHECK_RATE = 48000
#: Frame length of the spectra, samples at CHECK_RATE (85 ms: 11.7 Hz bins).
FRAME = 4096
#: Audio heard per label and sample folder at most, in seconds, and stretches read at most.
MAX_SECONDS = 20.0
MAX_STRETCHES = 12
#: The stretches of a label within this many seconds of the start are read in one pass from the
#: start; a label with none there is heard in its first stretch, found by a seek (each seek into a
#: long mp3 costs about a tenth of a second, about as much as decoding the first two minutes).
HEAD_SECONDS = 120.0
#: A label is reported when more than this share of its sound lies outside the band.
OUTSIDE_SHARE = 0.5


@dataclass
class BandPower:
    """The power one label's sound adds to the background, below, inside and above the analysed band."""

    below: float = 0.0
    inside: float = 0.0
    above: float = 0.0

    def __add__(self, other: BandPower) -> BandPower:
        return BandPower(self.below + other.below, self.inside + other.inside, self.above + other.above)

    @property
    def total(self) -> float:
        """The whole added power."""
        return self.below + self.inside + self.above

    @property
    def outside_share(self) -> float:
        """The share of the added power outside the band (0 when nothing was added)."""
        return (self.below + self.above) / self.total if self.total > 0 else 0.0


def _read_stretches(path: str, stretches: Sequence[tuple[float, float]], ffmpeg_bin: str) -> list[np.ndarray]:
    """Return each stretch of a recording, mono at CHECK_RATE, as int16 samples: one ffmpeg, a seek each."""
    if not stretches:
        return []
    inputs: list[str] = []
    chains, parts = [], ""
    lengths = [int(round((end - start) * CHECK_RATE)) for start, end in stretches]
    for i, ((start, end), n) in enumerate(zip(stretches, lengths, strict=True)):
        inputs += ["-ss", f"{start:.3f}", "-t", f"{end - start:.3f}", "-i", path]
        # exactly n samples a stretch (padded with silence if the decoder gives fewer), so they split
        chains.append(f"[{i}:a]aresample={CHECK_RATE},{MONO_FILTER},apad,atrim=end_sample={n}[s{i}]")
        parts += f"[s{i}]"
    graph = ";".join([*chains, f"{parts}concat=n={len(stretches)}:v=0:a=1[all]"])
    command = [
        find_ffmpeg(ffmpeg_bin),
        *("-hide_banner", "-nostdin", "-loglevel", "error"),
        *inputs,
        *("-filter_complex", graph, "-map", "[all]"),
        *pcm_pipe_args(CHECK_RATE, 1),
    ]
    proc = subprocess.run(command, capture_output=True, check=False)
    if proc.returncode:  # advice only: datagen itself reports an unreadable recording
        return [np.zeros(0) for _ in stretches]
    out = proc.stdout
    samples = np.frombuffer(out[: len(out) // 2 * 2], dtype="<i2")  # int16: a quarter of float64
    bounds = np.cumsum([0, *lengths])
    return [samples[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _mean_spectrum(pieces: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """Return the mean power spectrum of the frames of some stretches of audio, and their count."""
    total = np.zeros(FRAME // 2 + 1)
    frames = 0
    window = np.hanning(FRAME)
    for x in pieces:
        n = len(x) // FRAME
        if n == 0:
            continue
        frames_of = x[: n * FRAME].reshape(n, FRAME)
        for i in range(0, n, 32):  # 32 frames at a time: a few MB, whatever the stretch
            blocks = frames_of[i : i + 32].astype(np.float64) * window
            total += (np.abs(np.fft.rfft(blocks, axis=1)) ** 2).sum(axis=0)
        frames += n
    return (total / frames if frames else total), frames


def _picked(stretches: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Return the parts of a label's stretches to hear: within HEAD_SECONDS if any, else its first one.

    At most MAX_STRETCHES stretches, in order, each cut so that they hold MAX_SECONDS in all."""
    ordered = sorted(stretches)
    head = [(a, min(b, HEAD_SECONDS)) for a, b in ordered if min(b, HEAD_SECONDS) - a >= FRAME / CHECK_RATE]
    chosen = head[:MAX_STRETCHES] or ordered[:1]
    each = MAX_SECONDS / len(chosen)  # a label listed has at least one stretch
    return [(a, min(b, a + max(each, FRAME / CHECK_RATE))) for a, b in chosen]


def label_band_power(
    directory: AudioDirectory,
    spec: FeatureSpec,
    background_labels: Sequence[str],
    *,
    duration: float,
    ffmpeg_bin: str = "ffmpeg",
) -> dict[str, BandPower]:
    """Return, for each sound label of a sample folder, the power it adds below, inside and above the band."""
    labels = directory.labels
    if labels is None:
        return {}
    quiet = set(background_labels)
    spans: dict[str, list[tuple[float, float]]] = {}
    for seg in labels.segments(duration):
        end = duration if seg.end is None else seg.end
        if end - seg.start >= FRAME / CHECK_RATE:
            spans.setdefault("" if seg.label in quiet else seg.label, []).append((seg.start, end))
    sounds = {label: s for label, s in spans.items() if label}
    if not sounds:
        return {}
    freqs = np.fft.rfftfreq(FRAME, 1 / CHECK_RATE)
    low, high = float(spec.low_freq), float(spec.high_freq)
    picked = {label: _picked(stretches) for label, stretches in spans.items()}
    order = [(label, s) for label, stretches in picked.items() for s in stretches]
    in_head = [s for _, s in order if s[1] <= HEAD_SECONDS]
    head_end = max((b for _, b in in_head), default=0.0)
    seeks = [s for _, s in order if s[1] > HEAD_SECONDS]
    read = _read_stretches(str(directory.audio_file), [(0.0, head_end)] * bool(in_head) + seeks, ffmpeg_bin)
    whole = read[0] if in_head else np.zeros(0)
    sought = iter(read[1:] if in_head else read)
    heard: dict[str, list[np.ndarray]] = {label: [] for label in picked}
    for label, (a, b) in order:
        if b <= HEAD_SECONDS:
            heard[label].append(whole[int(round(a * CHECK_RATE)) : int(round(b * CHECK_RATE))])
        else:
            heard[label].append(next(sought))
    background, counted = _mean_spectrum(heard.get("", []))
    out = {}
    for label in sounds:
        spectrum, frames = _mean_spectrum(heard[label])
        if not frames:
            continue
        added = np.maximum(spectrum - background, 0.0) if counted else spectrum
        out[label] = BandPower(
            below=float(added[freqs < low].sum()),
            inside=float(added[(freqs >= low) & (freqs <= high)].sum()),
            above=float(added[freqs > high].sum()),
        )
    return out


def band_warnings(powers: Mapping[str, BandPower], spec: FeatureSpec) -> list[str]:
    """Return one line for each label whose sound lies mostly outside the band the features analyse."""
    lines = []
    nyquist = spec.sample_rate / 2
    for label, power in sorted(powers.items()):
        if power.outside_share <= OUTSIDE_SHARE:
            continue
        if power.above >= power.below:
            share = power.above / power.total
            if spec.high_freq < nyquist:
                fix = "raise features.high_freq (--high)"
            else:
                fix = "set audio.sample_rate: 44100 or 48000 (--sample-rate)"
            where = f"above {spec.high_freq:g} Hz"
        else:
            share = power.below / power.total
            fix, where = "lower features.low_freq (--low)", f"below {spec.low_freq:g} Hz"
        lines.append(
            f"label {label!r}: {share:.0%} of its sound lies {where}, outside the band the features "
            f"analyse ({spec.low_freq:g}-{spec.high_freq:g} Hz at {spec.sample_rate} Hz): the model hears "
            f"only the rest, which other sounds in the band can hide; {fix} and run datagen again"
        )
    return lines
