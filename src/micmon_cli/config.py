"""The micmon.yaml schema (one pydantic model per section), its search path, and flag overrides.

Lookup order: ``--config PATH``, ``$MICMON_CONFIG``, ``./micmon.yaml``,
``$XDG_CONFIG_HOME/micmon/micmon.yaml`` (``~/.config/micmon/micmon.yaml``), then built-in defaults.
Command-line flags override the file. Every problem becomes one `ConfigError` line naming the
file (or flag), the key and what is wrong.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from micmon._io import expand_path, read_text
from micmon.audio.recorder import RecordFormat
from micmon.detect import SILENCE_DBFS, EventKind
from micmon.errors import MicmonError, ParameterError
from micmon.features import (
    DATAGEN_HOP_FRACTION,
    DEFAULT_HIGH_FREQ,
    DEFAULT_LOW_FREQ,
    FeatureSpec,
    FeatureType,
    Scale,
)
from micmon.model.networks import Frontend, ModelType, Pooling
from micmon.training import ClassWeight, TrainingOptions

if TYPE_CHECKING:
    from micmon.history import EventStore

CONFIG_ENV = "MICMON_CONFIG"
BYTES_PER_MB = 1_000_000
CONFIG_NAME = "micmon.yaml"
#: Largest channel count ffmpeg capture is asked for.
MAX_CHANNELS = 32

#: Older names of keys (the original micmon's), read as the key they stand for.
KEY_ALIASES = {"features.sample_duration": "features.window_seconds"}

#: Keys of the monitor section that configure the detector (`micmon.detect.DetectorSettings`).
DETECTOR_KEYS = (
    "threshold",
    "thresholds",
    "targets",
    "k",
    "n",
    "m",
    "hold",
    "min_event_seconds",
    "cooldown_seconds",
    "min_dbfs",
    "silence_dbfs",
)

# Value sources, as `micmon config` shows them.
SOURCE_DEFAULT = "default"


class ConfigError(MicmonError):
    """The configuration file or a flag has a value micmon cannot use."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _expand(value: Any) -> Any:
    return expand_path(value) if isinstance(value, (str, os.PathLike)) else value


class PathsConfig(Section):
    """Where recordings, datasets and the model live."""

    audio_dir: Path = Field(
        Path("~/datasets/sound-detect/audio"), description="sample folders: audio.mp3 + labels.json each"
    )
    datasets_dir: Path = Field(
        Path("~/datasets/sound-detect/data"), description="datagen output: one .npz per sample folder"
    )
    model_dir: Path = Field(
        Path("~/models/sound-detect"), description="train output: model.keras, model.tflite, micmon.json"
    )

    model_config = ConfigDict(validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _expand_paths(cls, value: Any) -> Any:
        return _expand(value)


class AudioConfig(Section):
    """Capture and decoding: what ffmpeg reads and at which rate."""

    system: str = Field("alsa", description="ffmpeg input format: alsa, pulse, lavfi...")
    device: str = Field("default", description="input device, e.g. plughw:1,0 (see arecord -l)")
    sample_rate: PositiveInt = Field(
        16000,
        description="Hz; audio is resampled to it (16 kHz: the band of speech, cries, alarms and "
        "bells, familiar to band-limited files, and 3x cheaper than 44.1 kHz; it hears nothing above "
        "8 kHz, so a high beep needs 44100, and datagen warns when a labelled sound lies there)",
    )
    channels: int = Field(
        1,
        ge=1,
        le=MAX_CHANNELS,
        description="channels read (1: a stereo input's first channel; more: all of them, averaged "
        "inside the features, so a sound in any channel is heard)",
    )
    ffmpeg: str = Field("ffmpeg", description="ffmpeg executable (name on PATH or a path)")
    format: RecordFormat = Field("mp3", description="file format `record` writes")


class FeaturesConfig(Section):
    """How a window of audio becomes a feature vector (saved in every dataset and model)."""

    feature: FeatureType = Field("logmel", description="spectrum: averaged bands; logmel: log-mel frames")
    window_seconds: PositiveFloat = Field(
        2.0,
        description="window length in seconds (the original micmon's sample_duration, accepted as an alias)",
    )
    hop_seconds: PositiveFloat | None = Field(
        None,
        description="datagen: seconds between the starts of training windows around the sounds "
        "(overlapping windows give short sounds more examples; the background keeps one window "
        "after the other); empty: a quarter of the window; window_seconds: no overlap",
    )
    low_freq: NonNegativeFloat = Field(DEFAULT_LOW_FREQ, description="lowest frequency analysed, Hz")
    high_freq: PositiveFloat | None = Field(
        None,
        description="highest frequency analysed, Hz (at most half the sample rate); "
        f"empty: half the sample rate, at most {DEFAULT_HIGH_FREQ:g}",
    )
    bins: PositiveInt = Field(100, description="spectrum bands between low_freq and high_freq")
    scale: Scale = Field("log", description="log (decibels) or linear")
    mel_bands: PositiveInt = Field(40, description="logmel: mel bands per frame")
    frame_seconds: PositiveFloat = Field(0.025, description="logmel: frame length in seconds")
    frame_hop_seconds: PositiveFloat = Field(0.010, description="logmel: seconds between frames")


_TRAINING = TrainingOptions()  # the library's defaults are the config's


class TrainingConfig(Section):
    """Training: label list, epochs, split, network, augmentation (`micmon.training.TrainingOptions`)."""

    labels: list[str] = Field(
        default_factory=list,
        description="label list in class order; empty: every label found in the datasets, sorted",
    )
    background_label: str = Field(
        _TRAINING.background_label,
        description="the 'nothing happening' label; predict and monitor report events of the other labels",
    )
    epochs: PositiveInt = Field(_TRAINING.epochs, description="passes over the training windows")
    patience: NonNegativeInt = Field(
        _TRAINING.patience,
        description="early stopping: end once "
        "the held-out loss has not improved for this many epochs, "
        "keeping the best weights; 0: train every epoch",
    )
    validation_split: float = Field(
        _TRAINING.validation_split, ge=0.0, lt=1.0, description="share of windows held out for the report"
    )
    split_by_recording: bool = Field(
        _TRAINING.split_by_recording,
        description="hold out whole "
        "recordings rather than random windows (honest on unseen "
        "audio; needs several)",
    )
    batch_size: PositiveInt = Field(_TRAINING.batch_size, description="windows per training step")
    layers: list[PositiveInt] = Field(
        default_factory=list,
        description="hidden dense layer sizes; empty: the README's network (2x and 0.75x the bins)",
    )
    filters: list[PositiveInt] = Field(
        list(_TRAINING.filters), description="cnn: filters per convolution block (the network's capacity)"
    )
    pooling: Pooling = Field(
        _TRAINING.pooling,
        description="cnn: how the last feature map is summarised: average over the window, or its "
        "loudest moment (max; a sound shorter than the window is not averaged away)",
    )
    frontend: Frontend = Field(
        _TRAINING.frontend,
        description="cnn: what the network does to its log-mel input first: nothing (log), "
        "per-channel energy normalisation (pcen: each band divided by its own recent level), or "
        "the window relative to its mean level (relative: the same input at any microphone gain), or "
        "that with the window's mean level as a second channel (relative+level)",
    )
    level_floor: bool = Field(
        _TRAINING.level_floor,
        description="relative+level only: the level channel stops at the quietest sounds trained on "
        "(less the random gain), so a much quieter one is heard at that level, not as a new sound",
    )
    quantize: bool = Field(
        _TRAINING.quantize,
        description="store the .tflite's weights as int8: ~3x less CPU per scored window, scores "
        "within ~0.01 of the trained network's (calibration uses the .tflite's own)",
    )
    ensemble: PositiveInt = Field(
        _TRAINING.ensemble,
        description="networks trained with seeds "
        "seed, seed+1, ...; their scores are averaged inside the one "
        "saved model",
    )
    model_type: ModelType | None = Field(
        None,
        description="dense: README network on spectrum; cnn: small 2-D CNN on logmel; "
        "empty: the one built for the datasets' features",
    )
    augment: bool = Field(
        _TRAINING.augment,
        description="cnn only: add augmented copies of each "
        "training window (random gain, background mixed in, and as set below)",
    )
    augment_copies: PositiveInt = Field(
        _TRAINING.augment_copies, description="augmented copies of each training window"
    )
    augment_gain_db: NonNegativeFloat = Field(
        _TRAINING.augment_gain_db, description="random gain of the copies, +/- dB"
    )
    augment_mix_probability: float = Field(
        _TRAINING.augment_mix_probability,
        ge=0.0,
        le=1.0,
        description="share of copies with a background window mixed in",
    )
    augment_band_limit: float = Field(
        _TRAINING.augment_band_limit,
        ge=0.0,
        le=1.0,
        description="share of copies whose upper bands are cut, as "
        "an 8-16 kHz recording or a cheap microphone would",
    )
    augment_mask: float = Field(
        _TRAINING.augment_mask,
        ge=0.0,
        le=1.0,
        description="share of copies with SpecAugment time and frequency masks",
    )
    augment_shift: float = Field(
        _TRAINING.augment_shift,
        ge=0.0,
        le=1.0,
        description="share of the copies of sounds moved up or down in pitch by a mel band or two "
        "(another dog, another bell of the same kind)",
    )
    augment_eq: float = Field(
        _TRAINING.augment_eq,
        ge=0.0,
        le=1.0,
        description="share of copies given a random smooth gain curve across the bands "
        "(another microphone's or room's colouring)",
    )
    augment_stretch: float = Field(
        _TRAINING.augment_stretch,
        ge=0.0,
        le=1.0,
        description="share of the copies of sounds played up to 1.25 times faster or slower "
        "(a longer howl, a quicker bark)",
    )
    mixup: float = Field(
        _TRAINING.mixup,
        ge=0.0,
        le=1.0,
        description="mixes of two random training windows added, this many per training window, "
        "the label split between them by their shares of the mix (0: off)",
    )
    augment_mix_background: float = Field(
        _TRAINING.augment_mix_background,
        ge=0.0,
        le=1.0,
        description="share of the copies of background windows with another background window "
        "mixed in (the room's own sounds heard again under other talk, at other levels)",
    )
    quiet_negatives: float = Field(
        _TRAINING.quiet_negatives,
        ge=0.0,
        le=1.0,
        description="generated quiet-room windows (a microphone's own hiss and hum, -85 to -45 "
        "dBFS) added as background, this many per background training window (0: none)",
    )
    hard_negatives: float = Field(
        _TRAINING.hard_negatives,
        ge=0.0,
        lt=1.0,
        description="share of "
        "the background windows that score highest, trained on again "
        "after a first training (0: off)",
    )
    warmup: float = Field(
        _TRAINING.warmup,
        ge=0.0,
        lt=1.0,
        description="share of each round's epochs early stopping always keeps: it judges only after them",
    )
    weight_averaging: float = Field(
        _TRAINING.weight_averaging,
        ge=0.0,
        lt=1.0,
        description="share of the last training steps whose weights are averaged into the "
        "network's at the end of each fit early stopping does not end, the refit's (0: off)",
    )
    plain_batch_norm: bool = Field(
        _TRAINING.plain_batch_norm,
        description="after each fit, set the batch-norm statistics to the exact ones of the training "
        "windows as recorded, not the moving averages of the augmented batches",
    )
    refit: bool = Field(
        _TRAINING.refit,
        description="after early stopping, train again on every "
        "recording, the validation ones included, for the epochs it kept",
    )
    class_weight: ClassWeight = Field(
        _TRAINING.class_weight, description="weight classes by inverse frequency (imbalanced recordings)"
    )
    seed: int = Field(_TRAINING.seed, description="random seed for the split and the weights")
    holdout_recordings: int = Field(
        _TRAINING.holdout_recordings,
        ge=0,
        description="whole "
        "recordings kept out of training (named in micmon.json) to "
        "calibrate on with `micmon evaluate --calibrate`",
    )


class PredictConfig(Section):
    """`micmon predict`: batching (its events come from the `monitor:` detector settings)."""

    batch_size: PositiveInt = Field(64, description="windows scored per LiteRT call")


class _ActionConfig(Section):
    """Keys every monitor action has."""

    retries: int = Field(3, ge=0, le=100, description="extra attempts after a failure")


class CommandActionConfig(_ActionConfig):
    """monitor.actions: run a program per event (no shell; event in MICMON_* and on stdin)."""

    type: Literal["command"]
    command: list[str] | str = Field(
        description="program and arguments, e.g. "
        "[notify-send, micmon]; a string is split like a shell "
        "would, but no shell runs"
    )
    timeout: PositiveFloat = Field(30.0, description="seconds before the program is killed")
    events: list[EventKind] = Field(["start", "end"], min_length=1, description="which events run it")


class WebhookActionConfig(_ActionConfig):
    """monitor.actions: HTTP POST of the event JSON."""

    type: Literal["webhook"]
    url: str = Field(description="http:// or https:// URL")
    timeout: PositiveFloat = Field(10.0, description="seconds per attempt")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers")
    events: list[EventKind] = Field(["start", "end"], min_length=1, description="which events are posted")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        from pydantic_core import PydanticCustomError

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("url", "expected an http:// or https:// URL")
        return value


class MqttActionConfig(_ActionConfig):
    """monitor.actions: publish to an MQTT broker, with retained state and HA discovery."""

    type: Literal["mqtt"]
    broker: str = Field(
        "mqtt://localhost:1883", description="mqtt://[user:pass@]host[:port], mqtts:// for TLS"
    )
    topic: str | None = Field(None, description="base topic; empty: micmon/<node_id>")
    node_id: str | None = Field(
        None, description="this monitor's name in topics and Home Assistant; empty: the host name"
    )
    username: str | None = Field(None, description="broker user (or in the URL)")
    password: str | None = Field(None, description="broker password (or in the URL)")
    tls: bool | None = Field(None, description="use TLS; empty: only for mqtts://")
    ca_certs: Path | None = Field(None, description="CA bundle for TLS; empty: the system's")
    tls_insecure: bool = Field(False, description="skip the TLS host name check")
    discovery: bool = Field(
        True,
        description="announce Home Assistant entities: a binary "
        "sensor per target label, a detection event, the input level",
    )
    discovery_prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")
    client_id: str | None = Field(None, description="MQTT client id; empty: micmon-<node_id>-<pid>")

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        from pydantic_core import PydanticCustomError

        from micmon.actions import parse_broker_url

        try:
            parse_broker_url(value)
        except ParameterError as exc:
            raise PydanticCustomError("broker_url", str(exc).split(": ", 1)[-1]) from None
        return value

    @field_validator("ca_certs", mode="before")
    @classmethod
    def _expand_paths(cls, value: Any) -> Any:
        return _expand(value)


class ClipActionConfig(_ActionConfig):
    """monitor.actions: save each event's audio, with pre-roll, as mp3 or wav."""

    type: Literal["clip"]
    folder: Path = Field(Path("~/micmon-clips"), description="where clips are saved")
    format: Literal["mp3", "wav"] = Field("mp3", description="mp3 or wav")
    pre_roll: float = Field(5.0, ge=0, le=600, description="seconds before the onset")
    post_roll: float = Field(
        0.0, ge=0, le=600, description="seconds after the end (up to what the monitor still holds)"
    )
    max_seconds: PositiveFloat = Field(120.0, description="longest clip; the latest audio is kept")

    model_config = ConfigDict(validate_default=True)

    @field_validator("folder", mode="before")
    @classmethod
    def _expand_paths(cls, value: Any) -> Any:
        return _expand(value)


MonitorAction = Annotated[
    CommandActionConfig | WebhookActionConfig | MqttActionConfig | ClipActionConfig,
    Field(discriminator="type"),
]


def _score(name: str, value: float) -> float:
    if not 0.0 < value <= 1.0:
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError("score", f"{name} must be a score in (0, 1], e.g. 0.7")
    return value


class MonitorConfig(Section):
    """`micmon monitor`: live detection from a microphone or a file, and what to do on events.

    Detector keys left empty take the model's calibrated value (`micmon evaluate --calibrate`
    writes them into micmon.json), else the detector's default.
    """

    model: Path | None = Field(None, description="model folder; empty: paths.model_dir")
    hop: PositiveFloat | None = Field(
        None,
        description="seconds between window starts; "
        "empty: the model's calibrated hop, else a quarter of the "
        "window",
    )
    threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="default score threshold per label; "
        "set explicitly, it also beats the model's calibrated thresholds",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-label thresholds overriding `threshold`"
    )
    targets: list[str] = Field(
        default_factory=list,
        description="labels to report; empty: the "
        "keys of thresholds, else every label but the background ones",
    )
    k: PositiveInt | None = Field(
        None, description="an event starts when k of the last n windows pass the threshold (default 1)"
    )
    n: PositiveInt | None = Field(None, description="see k (default 1)")
    m: PositiveInt | None = Field(
        None, description="an event ends after m windows below the threshold (default 1)"
    )
    hold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="hysteresis: an open event goes "
        "on while its score stays above hold x the threshold (default 1)",
    )
    min_event_seconds: NonNegativeFloat | None = Field(
        None, description="shorter events are dropped (default 0)"
    )
    cooldown_seconds: NonNegativeFloat | None = Field(
        None, description="seconds from an event's end to the next of its label (default 0)"
    )
    min_dbfs: float | None = Field(
        None, le=0.0, description="windows quieter than this count as background without being scored"
    )
    silence_dbfs: float | None = Field(
        SILENCE_DBFS,
        le=0.0,
        description="the silence floor: "
        "quieter windows are digital silence (a muted or unplugged "
        "microphone), never an event, and reported",
    )
    reconnect_max_seconds: PositiveFloat = Field(
        30.0, description="longest wait between attempts to reopen a lost audio device"
    )
    actions: list[MonitorAction] = Field(
        default_factory=list, description="what to do on events: command, webhook, mqtt, clip (any number)"
    )
    # -- web page (issue 12) --
    web: str | int | None = Field(
        None,
        description="serve the web page on [HOST:]PORT, e.g. "
        "8080 or 0.0.0.0:8080 (needs micmon[web]); empty: no page",
    )
    web_token: str | None = Field(
        None,
        description="token the web page asks for; required "
        "when web listens on an address other machines can reach",
    )
    # -- end web page --

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for label, score in value.items():
            _score(f"thresholds.{label}", score)
        return value


# -- event history (issue 12) --
class HistoryConfig(Section):
    """The event history `micmon monitor` writes and `micmon events` reads (one SQLite file)."""

    enabled: bool = Field(True, description="record every event `monitor` raises")
    folder: Path | None = Field(
        None, description="folder of events.sqlite3; empty: the clip action's folder, else ~/micmon-clips"
    )
    max_age_days: NonNegativeFloat = Field(
        90.0, description="events older than this are removed with their clips (0: kept forever)"
    )
    max_clip_mb: NonNegativeFloat = Field(
        1000.0,
        description="clips kept add up to at most "
        "this many MB; the oldest events and clips go first "
        "(0: no limit)",
    )

    @field_validator("folder", mode="before")
    @classmethod
    def _expand_paths(cls, value: Any) -> Any:
        return _expand(value)


# -- end event history --


class EvaluateConfig(Section):
    """`micmon evaluate`: replay labelled recordings and measure detected events."""

    audio_dir: Path | None = Field(None, description="labelled recordings to replay; empty: paths.audio_dir")
    hop: PositiveFloat | None = Field(
        None, description="seconds between window starts; empty: the monitor's hop"
    )
    max_false_alarms_per_hour: NonNegativeFloat = Field(1.0, description="false-alarm budget for --calibrate")
    remix_background: bool = Field(
        True,
        description="--calibrate also on the background recordings remixed in pairs (the second "
        "shifted in time and 3-12 dB quieter): each room sound heard again under other talk; "
        "their false alarms count, their hours do not vouch for the budget",
    )

    @field_validator("audio_dir", mode="before")
    @classmethod
    def _expand_paths(cls, value: Any) -> Any:
        return _expand(value)


class Config(Section):
    """The whole micmon.yaml file."""

    paths: PathsConfig = Field(default_factory=lambda: PathsConfig.model_validate({}))
    audio: AudioConfig = Field(default_factory=lambda: AudioConfig.model_validate({}))
    features: FeaturesConfig = Field(default_factory=lambda: FeaturesConfig.model_validate({}))
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig.model_validate({}))
    predict: PredictConfig = Field(default_factory=lambda: PredictConfig.model_validate({}))
    monitor: MonitorConfig = Field(default_factory=lambda: MonitorConfig.model_validate({}))
    evaluate: EvaluateConfig = Field(default_factory=lambda: EvaluateConfig.model_validate({}))
    history: HistoryConfig = Field(default_factory=lambda: HistoryConfig.model_validate({}))

    def feature_spec(self, **changes: Any) -> FeatureSpec:
        """Return the FeatureSpec these settings describe (raises ParameterError)."""
        f, a = self.features, self.audio
        spec = FeatureSpec(
            sample_rate=a.sample_rate,
            channels=a.channels,
            window_seconds=f.window_seconds,
            hop_seconds=f.hop_seconds
            if f.hop_seconds is not None
            else f.window_seconds * DATAGEN_HOP_FRACTION,
            low_freq=f.low_freq,
            high_freq=f.high_freq if f.high_freq is not None else default_high_freq(a.sample_rate),
            bins=f.bins,
            scale=f.scale,
            feature=f.feature,
            mel_bands=f.mel_bands,
            frame_seconds=f.frame_seconds,
            frame_hop_seconds=f.frame_hop_seconds,
        )
        return spec.with_(**changes) if changes else spec


#: FeatureSpec parameter names (as they start ParameterError messages) -> config keys.
_SPEC_KEYS = {
    "sample_rate": "audio.sample_rate",
    "channels": "audio.channels",
    "window_seconds": "features.window_seconds",
    "hop_seconds": "features.hop_seconds",
    "low_freq": "features.low_freq",
    "high_freq": "features.high_freq",
    "bins": "features.bins",
    "scale": "features.scale",
    "feature": "features.feature",
    "mel_bands": "features.mel_bands",
    "frame_seconds": "features.frame_seconds",
    "frame_hop_seconds": "features.frame_hop_seconds",
}


# -- flags ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    """A command-line value overriding config key `key`; None means the flag was not given."""

    key: str
    value: Any
    name: str


# -- the resolved configuration -----------------------------------------------------------------
@dataclass
class ResolvedConfig:
    """A validated Config plus where each value came from."""

    config: Config
    file: Path | None
    sources: dict[str, str] = field(default_factory=dict)

    def source(self, key: str) -> str:
        """Return 'default', the file path, or 'flag --x' for dotted `key`."""
        return self.sources.get(key, SOURCE_DEFAULT)

    def where(self, key: str) -> str:
        """Return a prefix for messages about `key`: 'micmon.yaml: paths.audio_dir' or '--flag'."""
        src = self.source(key)
        if src.startswith("flag "):
            return src[len("flag ") :]
        if src == SOURCE_DEFAULT:
            return f"{key} (default)"
        return f"{src}: {key}"

    def existing_dir(self, key: str, value: Path | None = None) -> Path:
        """Return the folder at `key` (or `value`), or raise ConfigError if it does not exist."""
        path = value if value is not None else get_key(self.config, key)
        if not Path(path).is_dir():
            what = "is not a folder" if Path(path).exists() else "does not exist"
            raise ConfigError(
                f"{self.where(key)}: {path} {what}; create it or point {key} at the right folder"
            )
        return Path(path)

    def detector_overrides(self) -> dict[str, Any]:
        """Return the `monitor:` detector keys set explicitly (file or flag), to beat calibration."""
        mon = self.config.monitor
        return {
            key: getattr(mon, key) for key in DETECTOR_KEYS if self.source(f"monitor.{key}") != SOURCE_DEFAULT
        }

    def background_label(self) -> str | None:
        """Return training.background_label if set explicitly (else the model's own decides)."""
        explicit = self.source("training.background_label") != SOURCE_DEFAULT
        return self.config.training.background_label if explicit else None

    @contextmanager
    def blame(self, section: str) -> Iterator[None]:
        """Turn a library ParameterError about `section.<parameter>` into a ConfigError naming
        where that key was set (file, flag or default)."""
        try:
            yield
        except ParameterError as exc:
            fields = type(getattr(self.config, section)).model_fields
            if exc.parameter not in fields:
                raise
            key = f"{section}.{exc.parameter}"
            message = str(exc).removeprefix(f"{exc.parameter}:").strip()
            raise ConfigError(f"{self.where(key)}: {message}") from None

    def clip_folder(self) -> Path:
        """Return the folder of the first clip action (relative to the config file), else the
        clip action's default folder."""
        base = self.file.parent if self.file is not None else Path.cwd()
        for spec in self.config.monitor.actions:
            if isinstance(spec, ClipActionConfig):
                return spec.folder if spec.folder.is_absolute() else base / spec.folder
        return expand_path(ClipActionConfig.model_fields["folder"].default)

    def history_store(self, *, create: bool) -> EventStore:
        """Open the event history at history.folder (default: next to the clips), with its
        retention settings."""
        from micmon.history import HISTORY_FILE, EventStore

        h = self.config.history
        clips = self.clip_folder()
        folder = h.folder or clips
        return EventStore(
            folder / HISTORY_FILE,
            clip_folder=clips,
            max_age_days=h.max_age_days,
            max_clip_bytes=int(h.max_clip_mb * BYTES_PER_MB),
            create=create,
        )

    def items(self) -> Iterator[tuple[str, Any, str]]:
        """Yield (dotted key, value, source) for every leaf setting."""
        for section_name in Config.model_fields:
            section = getattr(self.config, section_name)
            for key in type(section).model_fields:
                dotted = f"{section_name}.{key}"
                yield dotted, getattr(section, key), self.source(dotted)


def get_key(config: Config, key: str) -> Any:
    """Return the value of dotted `key` ("section.name")."""
    section, name = key.split(".", 1)
    return getattr(getattr(config, section), name)


def config_search_path(cwd: Path | None = None) -> list[Path]:
    """Return the implicit config locations, most specific first (not --config / $MICMON_CONFIG)."""
    cwd = cwd or Path.cwd()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    home_dir = Path(xdg) if xdg else Path.home() / ".config"
    return [cwd / CONFIG_NAME, home_dir / "micmon" / CONFIG_NAME]


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the config file to use, following the lookup order; None for built-in defaults."""
    if explicit is not None:
        path = expand_path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config: {path} does not exist; check the path or drop --config")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = expand_path(env)
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV}: {path} does not exist; fix or unset {CONFIG_ENV}")
        return path
    for candidate in config_search_path():
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = read_text(path)  # UTF-8 or a clear EncodingError naming the file; a BOM is fine
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected sections such as 'paths:' and 'audio:', got a {type(data).__name__}"
        )
    return data


def _leaf_keys(data: Mapping[str, Any]) -> Iterator[str]:
    for section, values in data.items():
        if isinstance(values, Mapping) and section in Config.model_fields:
            for key in values:
                yield f"{section}.{key}"


def _suggest(name: str, loc: tuple[Any, ...]) -> str:
    """Return a ' did you mean ...?' hint for unknown key `name` found at `loc`."""
    section_model: type[BaseModel] = Config
    for part in loc[:-1]:
        annotation = section_model.model_fields[str(part)].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section_model = annotation
    candidates = list(section_model.model_fields)
    match = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.6)
    if match:
        return f"; did you mean '{match[0]}'?"
    # A key placed in the wrong section (or at the top level): point at where it belongs.
    for section, model in Config.model_fields.items():
        annotation = model.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = list(annotation.model_fields)
            found = difflib.get_close_matches(str(name), fields, n=1, cutoff=0.8)
            if found:
                return f"; did you mean '{section}.{found[0]}'?"
    return f"; known keys: {', '.join(candidates)}"


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _suggest(str(loc[-1]), loc)
    got = err.get("input")
    msg = str(err["msg"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a section of 'key: value' lines, got {got!r}"
    if kind.endswith("_parsing") or kind.endswith("_type") or kind == "literal_error":
        return f"{msg[0].lower()}{msg[1:]}, got {got!r}"
    return f"{msg[0].lower()}{msg[1:]} (got {got!r})"


def _error_origin(key: str, sources: Mapping[str, str], file: Path | None) -> str:
    src = sources.get(key)
    if src and src.startswith("flag "):
        return f"{src[len('flag ') :]} ({key})"
    if file is not None:
        return f"{file}: {key}"
    return key


def load_config(
    path: str | os.PathLike[str] | None = None, flags: list[Flag] | tuple[Flag, ...] = ()
) -> ResolvedConfig:
    """Find, read and validate the config, apply `flags`, and record each value's source."""
    file = find_config_file(path)
    data = _canonical_keys(_read_yaml(file)) if file is not None else {}
    sources = {key: str(file) for key in _leaf_keys(data)}
    base = file.parent if file is not None else None
    for flag in flags:
        if flag.value is None:
            continue
        section, name = flag.key.split(".", 1)
        current = data.get(section)
        data[section] = {**(current if isinstance(current, Mapping) else {}), name: flag.value}
        sources[flag.key] = f"flag {flag.name}"
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # Every problem, not the first one and a count: one fix-and-retry round, not several.
        problems = [
            f"{_error_origin('.'.join(str(p) for p in err['loc']), sources, file)}: {_describe(err)}"
            for err in exc.errors()
        ]
        raise ConfigError("; ".join(problems)) from None
    resolved = ResolvedConfig(config=config, file=file, sources=sources)
    if base is not None:
        _rebase_relative_paths(resolved, base)
    _check_features(resolved)
    return resolved


def _canonical_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Return the file's sections with aliased keys (KEY_ALIASES) under their current names."""
    for alias, key in KEY_ALIASES.items():
        section, old = alias.split(".", 1)
        values = data.get(section)
        if isinstance(values, dict) and old in values:
            new = key.split(".", 1)[1]
            values = dict(values)
            value = values.pop(old)
            values.setdefault(new, value)
            data[section] = values
    return data


def _rebase_relative_paths(resolved: ResolvedConfig, base: Path) -> None:
    """Make relative paths written in the file relative to the file's folder, not the cwd."""
    for key, value, source in list(resolved.items()):
        if isinstance(value, Path) and not value.is_absolute() and source == str(resolved.file):
            section, name = key.split(".", 1)
            setattr(getattr(resolved.config, section), name, base / value)


def default_high_freq(sample_rate: int) -> float:
    """The analysed band's top when features.high_freq is unset: 20 kHz, or Nyquist below it."""
    return min(DEFAULT_HIGH_FREQ, sample_rate / 2)


def _check_features(resolved: ResolvedConfig) -> None:
    """Check the feature settings together (cutoffs vs Nyquist, bins vs resolution)."""
    config = resolved.config
    if config.features.high_freq is None:
        # Unset (the example file leaves it empty): follows the sample rate instead of failing.
        config.features.high_freq = default_high_freq(config.audio.sample_rate)
        # derived, not read: an empty key in the file is the default, and `micmon config` says so
        resolved.sources.pop("features.high_freq", None)
    try:
        resolved.config.feature_spec()
    except ParameterError as exc:
        key = _SPEC_KEYS.get(exc.parameter or "", "features")
        message = str(exc).removeprefix(f"{exc.parameter}:").strip()
        raise ConfigError(f"{_error_origin(key, resolved.sources, resolved.file)}: {message}") from None


# -- what the CLI shows of each key ---------------------------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    """A config key's description, default and (for enumerated keys) choices."""

    description: str
    default: Any
    choices: tuple[str, ...] = ()


def key_info(key: str) -> KeyInfo:
    """Return the description, default and choices of dotted config `key`."""
    section, name = key.split(".", 1)
    section_model = Config.model_fields[section].annotation
    assert isinstance(section_model, type) and issubclass(section_model, BaseModel)
    info = section_model.model_fields[name]
    default = info.get_default(call_default_factory=True)
    if isinstance(default, Path):
        default = str(default).replace(str(Path.home()), "~", 1)
    return KeyInfo(info.description or key, default, _choices(info.annotation))


def _choices(annotation: Any) -> tuple[str, ...]:
    from typing import get_args, get_origin

    if get_origin(annotation) is Literal:
        return tuple(str(a) for a in get_args(annotation))
    for arg in get_args(annotation):  # Optional[Literal[...]]
        if get_origin(arg) is Literal:
            return tuple(str(a) for a in get_args(arg))
    return ()


# -- the documented example file ----------------------------------------------------------------
EXAMPLE_HEADER = """\
# micmon configuration: every key is optional; the values shown are the defaults.
# micmon looks for it in this order: --config PATH, $MICMON_CONFIG, ./micmon.yaml,
# ~/.config/micmon/micmon.yaml. Command-line flags override it; `micmon config` shows the
# effective values and where each came from. `~` and $VARS expand in paths; relative paths
# are relative to this file's folder.
"""


def _yaml_value(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def _field_comment(info: Any) -> str:
    text = info.description or ""
    choices = _choices(info.annotation)
    if choices:
        text += f" (one of: {', '.join(choices)})"
    return text


def _render_section(model: BaseModel, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.description:
            lines.append(f"{pad}# {_field_comment(info)}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines += _render_section(value, indent + 2)
        else:
            lines.append(f"{pad}{name}: {_yaml_value(value)}")
    return lines


def _sections() -> Iterator[tuple[str, BaseModel, str]]:
    """Yield each config section's name, its defaults and the first line of its docstring."""
    defaults = Config.model_validate({})
    for name in Config.model_fields:
        section = getattr(defaults, name)
        yield name, section, (type(section).__doc__ or name).strip().splitlines()[0]


def render_example() -> str:
    """Return the documented micmon.yaml (every key, comment, default) built from the schema."""
    lines = [EXAMPLE_HEADER.rstrip("\n")]
    for name, section, summary in _sections():
        lines += ["", f"# {summary}", f"{name}:"]
        for line in _render_section(section, 2):
            lines.append(line)
    text = "\n".join(lines) + "\n"
    # Paths are shown as written (unexpanded), as a user would write them.
    home = str(Path.home())
    return text.replace(f" {home}/", " ~/")


def render_reference() -> str:
    """Return the Markdown key tables of docs/config.md (every key, default, meaning) from the schema."""
    home = str(Path.home())
    blocks: list[str] = []
    for name, section, summary in _sections():
        rows = [f"### `{name}:` — {summary}", "", "| key | default | meaning |", "|---|---|---|"]
        for key, info in type(section).model_fields.items():
            default = _yaml_value(getattr(section, key)).replace(f"{home}/", "~/")
            meaning = _field_comment(info).replace("|", "\\|")
            rows.append(f"| `{key}` | `{default}` | {meaning} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks) + "\n"


__all__ = [
    "AudioConfig",
    "Config",
    "ConfigError",
    "EvaluateConfig",
    "FeaturesConfig",
    "Flag",
    "HistoryConfig",
    "MonitorConfig",
    "PathsConfig",
    "PredictConfig",
    "ResolvedConfig",
    "Section",
    "TrainingConfig",
    "config_search_path",
    "find_config_file",
    "get_key",
    "load_config",
    "render_example",
    "render_reference",
]
