"""Train a sound classifier from datasets: the one training path of `micmon train`, `micmon demo`
and the accuracy benchmarks.

`train()` takes the datasets (a folder of .npz files or loaded `Dataset` objects) and a
`TrainingOptions`, holds out whole recordings for calibration if asked, fits the network the
features call for (the README dense network on ``spectrum``, the small CNN on ``logmel``) with
augmentation and class weights, and returns a `TrainingResult`: the model, a classification
report on the held-out windows and the learning history. `TrainingResult.save()` writes the model
folder with all of it in micmon.json. TensorFlow is imported only once training starts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from micmon._deps import require_keras
from micmon._io import expand_path
from micmon.dataset import Dataset
from micmon.errors import DatasetError, ParameterError
from micmon.evaluate import classification_report, holdout_recordings
from micmon.model.augment import AUGMENT_MIX_PROBABILITY
from micmon.model.model import check_destination
from micmon.model.networks import (
    CNN_FILTERS,
    CNN_POOLING,
    FRONTENDS,
    MODEL_TYPES,
    POOLINGS,
    Frontend,
    ModelType,
    Pooling,
    check_level_floor,
    model_type_for,
)

if TYPE_CHECKING:
    from micmon.features import FeatureSpec
    from micmon.model import Model

#: Names of the PNG files `plot_training` writes into the model folder.
PLOT_CURVES = "learning_curves.png"
PLOT_CONFUSION = "confusion_matrix.png"
ClassWeight = Literal["balanced", "none"]
CLASS_WEIGHTS: tuple[str, ...] = get_args(ClassWeight)
#: `level_floor`: the percentile of the target windows' levels the level channel stops at.
LEVEL_FLOOR_PERCENTILE = 5.0

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainingOptions:
    """How to train; every field has a working default (the `training:` config section).

    The defaults are the bundle that beat the previous ones (10 epochs, random validation windows,
    one gain/mix copy) on every task of the hard benchmark over 3 seeds (docs/benchmarks-hard.md):
    30 epochs with early stopping on held-out recordings, two augmented copies with band-limit and
    SpecAugment masks, and one round of hard negatives; since the fifth round, a refit on every
    recording for the epochs early stopping kept.

    Parameters
    ----------
    model_type : "dense", "cnn" or None
        The network; None: the one built for the datasets' features (cnn for logmel).
    epochs, batch_size : int >= 1
        Passes over the training windows, and windows per gradient step.
    validation_split : float in [0, 1)
        Share of the windows held out for the report.
    split_by_recording : bool
        Hold out whole recordings rather than random windows (honest on unseen audio); the
        validation recordings hold every class that two recordings hold
        (`micmon.dataset.dataset.choose_recordings`).
    holdout_recordings : int >= 0
        Whole recordings kept out of training altogether, to calibrate the detector on; chosen
        the same way, so calibration has events to find.
    labels : sequence of str
        Label list in class order; empty: every label in the datasets.
    background_label : str
        The "nothing happening" label (mixed into other windows by the augmentation).
    class_weight : "balanced" or "none"
        Weight classes by inverse frequency.
    augment : bool
        cnn only: add a copy of each training window with random gain and background mixed in.
    augment_gain_db : float >= 0
        Range of the augmentation's random gain, +/- dB.
    augment_copies : int >= 1
        Augmented copies of each training window.
    augment_mix_probability, augment_band_limit, augment_mask, augment_shift, augment_eq : float in [0, 1]
        Share of the copies that get a background window mixed in, lose their upper bands (as an
        8-16 kHz recording would), get SpecAugment masks, (sounds only) move up or down in
        pitch by a mel band or two, and get a random microphone colouring (see
        `micmon.model.augment`).
    augment_stretch : float in [0, 1]
        Share of the copies of sounds played up to 1.25 times faster or slower (a longer howl,
        a quicker bark).
    mixup : float in [0, 1]
        cnn only: mixes of two random training windows added, this many per training window
        (0: off): their powers summed at a random share each (`micmon.model.augment.mixup`), the
        label split between the two classes by the same shares (soft labels, as loss weights).
    augment_mix_background : float in [0, 1]
        Share of the copies of background windows that get another background window mixed in:
        the room's own sounds heard again under other talk and at other levels, as negatives
        (fewer false alarms on the room's sounds in new mixes; issue 8's ninth round).
    quiet_negatives : float in [0, 1]
        Generated quiet-room windows (a microphone's own hiss and hum, -85 to -45 dBFS,
        `micmon.model.augment.quiet_room_windows`) added as background, this many per background
        training window (0: none): recordings made by day rarely hold a night's quiet room, and a
        network that takes out the level (``frontend="relative"``) otherwise hears a faint hiss
        as a loud noise-like sound (issue 8's twenty-fifth round).
    patience : int >= 0
        Early stopping: end training once the held-out loss has not improved for this many
        epochs, keeping the best weights (0: train all `epochs`; needs held-out windows).
    hard_negatives : float in [0, 1)
        Hard-negative mining: after training, this share of the background training windows that
        score highest for another label is added again and training goes on (0: off).
    refit : bool
        After early stopping, train a new network on every fitted recording, the validation ones
        included, for the epochs early stopping kept; the report stays the early-stopped
        network's (few recordings: validation no longer costs a third of the examples).
    warmup : float in [0, 1)
        Early stopping keeps at least this share of each round's epochs: it judges only after
        them (with one validation recording per class, its loss can be lowest by chance after
        an epoch or two; the default 0.15 keeps 5 of 30, then 3 of 15).
    weight_averaging : float in [0, 1)
        After each fit that early stopping does not end (the refit's), the network's weights are
        the mean of its weights over this share of the fit's last steps (0: off): one network
        from a stretch of training rather than from wherever its last step happened to land.
    plain_batch_norm : bool
        After each fit, set the network's batch-norm statistics to the exact mean and variance,
        over the fit's training windows as recorded (not augmented), of what each layer receives;
        otherwise they are the moving averages gathered on the augmented batches, which new
        audio does not resemble (one wider network took 6-18 % of the room windows it was
        fitted on for the sound, and raised 21.5 false alarms an hour on new room audio, until
        they were recomputed; issue 8's twelfth round).
    filters : sequence of int
        cnn only: filters per convolution block (its capacity).
    pooling : "average" or "max"
        cnn only: how the last feature map is summarised; "max" takes the loudest moment of the
        window, so a sound shorter than the window is not averaged away.
    frontend : "log", "pcen", "relative" or "relative+level"
        cnn only: what the network does to its log-mel input first; "pcen" normalises each band
        by its own recent level (per-channel energy normalisation, `micmon.model.pcen`);
        "relative" subtracts the window's mean level, so any microphone gain gives the same input
        (`micmon.model.level`); "relative+level" gives the network that and the window's mean
        level as a second channel (the level still there to learn from, not in every value).
    level_floor : bool
        ``frontend="relative+level"`` only: the level channel stops at the level of the quietest
        target windows of the first fit, its augmented copies included (their 5th percentile): a
        target quieter than any heard in training is heard at that level rather than as a new,
        unknown sound (issue 8's thirty-first round: 24 dB quieter, a quarter of the howls found).
    quantize : bool
        Store the .tflite's weights as int8 (dynamic range quantization): ~3x less CPU per scored
        window in predict, evaluate and monitor, for scores within ~0.01 of the Keras model's;
        calibration runs on the .tflite's own scores.
    ensemble : int >= 1
        Networks trained with seeds seed, seed+1, ...; their scores are averaged inside the one
        saved model (and .tflite), so serving stays a single call.
    layers : sequence of int
        dense only: hidden layer widths; empty: the README network.
    seed : int
        Seed of the split, the weights and the augmentation.
    """

    model_type: ModelType | None = None
    epochs: int = 30
    batch_size: int = 32
    validation_split: float = 0.3
    split_by_recording: bool = True
    holdout_recordings: int = 0
    labels: tuple[str, ...] = ()
    background_label: str = "negative"
    class_weight: ClassWeight = "balanced"
    augment: bool = True
    augment_gain_db: float = 12.0
    augment_copies: int = 2
    augment_mix_probability: float = AUGMENT_MIX_PROBABILITY
    augment_band_limit: float = 0.5
    augment_mask: float = 0.5
    augment_shift: float = 0.0
    augment_eq: float = 0.0
    augment_stretch: float = 0.0
    mixup: float = 0.0
    augment_mix_background: float = 0.5
    quiet_negatives: float = 0.1
    patience: int = 5
    hard_negatives: float = 0.1
    refit: bool = True
    warmup: float = 0.15
    weight_averaging: float = 0.0
    plain_batch_norm: bool = False
    filters: tuple[int, ...] = CNN_FILTERS
    pooling: Pooling = CNN_POOLING
    frontend: Frontend = "relative+level"
    level_floor: bool = False
    ensemble: int = 1
    quantize: bool = True
    layers: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        object.__setattr__(self, "filters", tuple(int(n) for n in self.filters))
        if self.model_type is not None and self.model_type not in MODEL_TYPES:
            raise ParameterError(
                f"model_type: must be one of {', '.join(MODEL_TYPES)}, got {self.model_type!r}",
                parameter="model_type",
                value=self.model_type,
            )
        if self.frontend not in FRONTENDS:
            raise ParameterError(
                f"frontend: must be one of {', '.join(FRONTENDS)}, got {self.frontend!r}",
                parameter="frontend",
                value=self.frontend,
            )
        check_level_floor(self.level_floor, self.frontend)
        if self.pooling not in POOLINGS:
            raise ParameterError(
                f"pooling: must be one of {', '.join(POOLINGS)}, got {self.pooling!r}",
                parameter="pooling",
                value=self.pooling,
            )
        for name in (
            "augment_mix_probability",
            "augment_band_limit",
            "augment_mask",
            "augment_shift",
            "augment_eq",
            "augment_stretch",
            "mixup",
            "augment_mix_background",
            "quiet_negatives",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ParameterError(f"{name}: must be in [0, 1], got {value!r}", parameter=name, value=value)
        for name in ("hard_negatives", "warmup", "weight_averaging"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ParameterError(f"{name}: must be in [0, 1), got {value!r}", parameter=name, value=value)
        for name in ("patience",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ParameterError(
                    f"{name}: must be an integer >= 0, got {value!r}", parameter=name, value=value
                )
        for name in ("epochs", "batch_size", "augment_copies", "ensemble"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(
                    f"{name}: must be an integer >= 1, got {value!r}", parameter=name, value=value
                )
        if not 0.0 <= self.validation_split < 1.0:
            raise ParameterError(
                f"validation_split: must be in [0, 1), got {self.validation_split!r}",
                parameter="validation_split",
                value=self.validation_split,
            )
        if self.class_weight not in CLASS_WEIGHTS:
            raise ParameterError(
                f"class_weight: must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weight!r}",
                parameter="class_weight",
                value=self.class_weight,
            )

    @property
    def planned_epochs(self) -> tuple[int, ...]:
        """Epochs of each training round at most: the first fit, then the hard negatives' if any."""
        if not self.hard_negatives:
            return (self.epochs,)
        return (self.epochs, max(1, self.epochs // 2))

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-ready dict."""
        data = asdict(self)
        data["labels"], data["layers"] = list(self.labels), list(self.layers)
        data["filters"] = list(self.filters)
        return data


def training_options(values: dict[str, Any]) -> TrainingOptions:
    """Return TrainingOptions from a mapping such as the `training:` config section (others ignored)."""
    known = {f.name for f in fields(TrainingOptions)}
    return TrainingOptions(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainingResult:
    """A trained model, its report on held-out windows, and how it was trained."""

    model: Model
    report: dict[str, Any]
    history: dict[str, list[float]]
    options: TrainingOptions
    model_type: str
    datasets: list[str]
    held_out: list[str]
    class_counts: dict[str, int]
    held_out_sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """Return what micmon.json records under "training"."""
        return {
            **self.options.to_dict(),
            "model_type": self.model_type,
            "augment": self.model_type == "cnn" and self.options.augment,
            "datasets": self.datasets,
            "class_counts": self.class_counts,
            "holdout_recordings": self.held_out,
            "holdout_sources": self.held_out_sources,
        }

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model folder (model.keras, model.tflite, micmon.json with the report)."""
        self.model.metadata["training"] = self.metadata()
        target = expand_path(path)
        self.model.save(
            target,
            overwrite=overwrite,
            metrics={**self.report, "history": self.history},
            quantize=self.options.quantize,
        )
        return target


def load_datasets(
    source: str | os.PathLike[str] | Sequence[Dataset], options: TrainingOptions
) -> list[Dataset]:
    """Return the per-recording datasets of a folder of .npz files (or the given ones)."""
    if isinstance(source, (str, os.PathLike)):
        return Dataset.scan(source, labels=list(options.labels) or None, seed=options.seed)
    datasets = list(source)
    if not datasets:
        raise DatasetError("datasets: nothing to train on; run `micmon datagen` first")
    return datasets


def train(
    datasets: str | os.PathLike[str] | Sequence[Dataset],
    options: TrainingOptions | None = None,
    *,
    on_epoch: EpochCallback | None = None,
    on_message: Callable[[str], None] | None = None,
    on_refit: Callable[[int], None] | None = None,
) -> TrainingResult:
    """Train a classifier on per-recording datasets; return the model and its report.

    `on_epoch(epoch, logs)` is called after each epoch (1-based), `on_message(text)` with progress
    notes (what is held out, what is fitted, when TensorFlow loads), `on_refit(epochs)` once
    before the refit (`TrainingOptions.refit`), whose epochs `on_epoch` then counts from 1 again.
    """
    opts = options or TrainingOptions()
    say = on_message or (lambda text: None)
    say("loading TensorFlow...")
    _keras()  # without TensorFlow (a Raspberry Pi install), say so before any work
    loaded = load_datasets(datasets, opts)
    held: list[Dataset] = []
    if opts.holdout_recordings:
        loaded, held = holdout_recordings(loaded, opts.holdout_recordings, seed=opts.seed)
        say(f"held out for calibration: {', '.join(str(d.name) for d in held)}")
    labels = list(loaded[0].labels or [])
    spec = _common_spec(loaded)
    data = Dataset.combine(
        loaded, opts.validation_split, by_recording=opts.split_by_recording, seed=opts.seed
    )
    counts = data.class_counts()
    _check_labels(counts, opts)
    warnings = []
    if opts.background_label not in labels:
        warnings.append(
            f"background label {opts.background_label!r} is not among the labels "
            f"{labels}; set training.background_label"
        )
    kind = opts.model_type or model_type_for(spec)
    say(
        f"{len(loaded)} datasets, {len(data)} windows "
        f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); {len(data.train_samples)} for "
        f"training, {len(data.validation_samples)} held out"
        f"{' by recording' if opts.split_by_recording else ''}; model: {kind}"
    )

    members = []
    rounds: list[list[int]] = []
    history: dict[str, list[float]] = {}
    for member in range(opts.ensemble):
        if opts.ensemble > 1:
            say(f"ensemble: network {member + 1} of {opts.ensemble}")
        member_opts = replace(opts, seed=opts.seed + member)
        net, member_history, kept = _fit(data, spec, labels, kind, member_opts, on_epoch=on_epoch, say=say)
        members.append(net)
        rounds.append(kept)
        history = history or member_history
    model = members[0] if len(members) == 1 else _average(members, labels, spec)
    held_out = len(data.validation_samples) > 0
    x, y = (data.validation_samples, data.validation_classes) if held_out else (data.samples, data.classes)
    report = classification_report(np.asarray(y), model.scores(x).argmax(axis=1), labels)
    report["split"] = (
        ("recordings" if opts.split_by_recording else "windows") if held_out else "none (training windows)"
    )
    if opts.refit and held_out and opts.patience:
        everything = Dataset.combine(loaded, 0.0, seed=opts.seed)
        if on_refit is not None:
            on_refit(sum(sum(kept) for kept in rounds))
        refitted = []
        for member, kept in enumerate(rounds):
            say(
                f"fitting again on all {len(everything)} windows for the epochs early stopping kept "
                f"({' + '.join(str(n) for n in kept)})"
            )
            member_opts = replace(opts, seed=opts.seed + member)
            net, _, _ = _fit(
                everything, spec, labels, kind, member_opts, on_epoch=on_epoch, say=say, rounds=kept
            )
            refitted.append(net)
        model = refitted[0] if len(refitted) == 1 else _average(refitted, labels, spec)
        report["refit"] = [list(kept) for kept in rounds]
    if not held_out:
        warnings.append(
            "no windows held out (validation split 0): the report is on training "
            "windows and says little about new audio"
        )
    return TrainingResult(
        model=model,
        report=report,
        history=history,
        options=opts,
        model_type=kind,
        datasets=[str(d.name) for d in loaded],
        held_out=[str(d.name) for d in held],
        class_counts=counts,
        held_out_sources=[d.source for d in held if d.source],
        warnings=warnings,
    )


def _common_spec(datasets: Sequence[Dataset]) -> FeatureSpec:
    spec = next((d.spec for d in datasets if d.spec is not None), None)
    if spec is None:
        raise DatasetError(
            "the datasets have no feature settings (original micmon format); "
            "regenerate them with `micmon datagen --force`"
        )
    return spec


def _check_labels(counts: dict[str, int], opts: TrainingOptions) -> None:
    present = [name for name, c in counts.items() if c]
    if len(present) < 2:
        raise DatasetError(
            f"only the label(s) {present or '(none)'} occur in the datasets; a "
            "classifier needs windows of at least two labels"
        )
    unused = [n for n in opts.labels if not counts.get(n)]
    if unused:
        raise ParameterError(
            f"labels: label(s) {', '.join(unused)} occur in no dataset; remove "
            "them from the label list or record and label examples",
            parameter="labels",
            value=unused,
        )


def _fit(
    data: Dataset,
    spec: FeatureSpec,
    labels: list[str],
    kind: str,
    opts: TrainingOptions,
    *,
    on_epoch: EpochCallback | None,
    say: Callable[[str], None],
    rounds: Sequence[int] | None = None,
) -> tuple[Model, dict[str, list[float]], list[int]]:
    """Build the network of `kind`, fit it on `data` (then on its hard negatives); return the model,
    its history and the epochs kept per fit.

    With `rounds`, fit for exactly those epochs (the first fit, then the hard negatives), without
    early stopping.
    """
    from micmon.model import Model
    from micmon.model.networks import build_layers, cnn_layers

    keras = _keras()
    keras.utils.set_random_seed(opts.seed)
    layers = (
        cnn_layers(
            spec,
            len(labels),
            filters=opts.filters,
            pooling=opts.pooling,
            frontend=opts.frontend,
            level_floor=0.0 if opts.level_floor else None,  # set from the first fit's windows
        )
        if kind == "cnn"
        else build_layers(kind, spec, len(labels), hidden=opts.layers or None)
    )
    model = Model(layers, labels, spec=spec)
    history: dict[str, list[float]] = {}
    done = [0]  # epochs run so far, across the fits

    class _Epochs(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            done[0] += 1
            if on_epoch is not None:
                on_epoch(done[0], logs)

    validation = len(data.validation_samples) > 0
    early = bool(opts.patience and validation and rounds is None)
    plan = list(rounds if rounds is not None else opts.planned_epochs)
    kept: list[int] = []

    def fit(dataset: Dataset, epochs: int) -> None:
        before = done[0]
        callbacks: list[Any] = [_Epochs()]
        stopper = None
        if early:  # judged only after the warm-up: one noisy validation recording cannot pick epoch 2
            stopper = keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=opts.patience,
                restore_best_weights=True,
                start_from_epoch=max(0, math.ceil(opts.warmup * epochs) - 1),
            )
            callbacks.append(stopper)
        augmented = _with_quiet_negatives(_augmented(dataset, kind, opts), spec, labels, opts)
        unmixed = augmented
        weights: dict[str, Any] = {}
        if kind == "cnn" and opts.mixup:
            augmented, weights["sample_weight"] = _with_mixup(augmented, spec, labels, opts)
        if kind == "cnn" and opts.level_floor and before == 0:
            _set_level_floor(model, augmented, unmixed, labels, opts)
        averager = None
        if opts.weight_averaging and stopper is None:
            averager = _weight_averager(opts.weight_averaging)
            callbacks.append(averager)
        model.fit(
            augmented,
            epochs=epochs,
            batch_size=opts.batch_size,
            class_weight="balanced" if opts.class_weight == "balanced" and not weights else None,
            callbacks=callbacks,
            validation=validation,
            **weights,
        )
        if averager is not None:  # the batch-norm statistics were gathered under the raw weights
            _recompute_batch_statistics(model.keras_model, augmented.train_samples, opts.batch_size)
        if opts.plain_batch_norm:
            _plain_batch_statistics(model.keras_model, data.train_samples, opts.batch_size)
        kept.append(stopper.best_epoch + 1 if stopper is not None else done[0] - before)

    fit(data, plan[0])
    if len(plan) > 1:
        mined = _with_hard_negatives(model, data, labels, opts)
        if mined is not None:
            say(
                f"hard negatives: {len(mined.train_samples) - len(data.train_samples)} background "
                "windows that scored highest are trained on again"
            )
            fit(mined, plan[1])
    return model, history, kept


def _set_level_floor(
    model: Model, data: Dataset, unmixed: Dataset, labels: list[str], opts: TrainingOptions
) -> None:
    """Set the level channel's floor to the quietest target windows of `unmixed` (the training
    windows before mixup's mixes), as the layer sees them once standardised on `data`."""
    from micmon.model.level import RelativeWithLevel
    from micmon.model.model import NORMALIZATION_LAYER, _adapt_normalization

    keras_model = model.keras_model
    layer = next(la for la in keras_model.layers if isinstance(la, RelativeWithLevel))
    _adapt_normalization(keras_model, data.train_samples)  # the fit would: the floor is in its units
    classes = np.asarray(unmixed.train_classes)
    targets = np.asarray(unmixed.train_samples)
    if opts.background_label in labels and np.any(classes != labels.index(opts.background_label)):
        targets = targets[classes != labels.index(opts.background_label)]
    band_levels = targets.mean(axis=1, dtype=np.float64)[:, None, :].astype(np.float32)  # (N, 1, bands)
    try:
        band_levels = np.asarray(keras_model.get_layer(NORMALIZATION_LAYER)(band_levels))
    except ValueError:  # no input standardisation: the layer sees the features as they are
        pass
    levels = band_levels.reshape(len(band_levels), -1).mean(axis=1)
    layer.floor = float(np.percentile(levels, LEVEL_FLOOR_PERCENTILE))


def _weight_averager(share: float) -> Any:
    """Return a Keras callback that ends a fit by setting the trainable weights to their mean over
    the last `share` of its steps."""
    keras = _keras()

    class _Average(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            steps = self.params["epochs"] * self.params["steps"]  # as Keras batches this fit
            self.first = steps - max(1, round(share * steps))
            self.step = self.count = 0
            self.sums = [np.zeros(v.shape, dtype=np.float64) for v in self.model.trainable_variables]

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            if self.step >= self.first:
                for total, variable in zip(self.sums, self.model.trainable_variables, strict=True):
                    total += np.asarray(variable.numpy(), dtype=np.float64)
                self.count += 1
            self.step += 1

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            if self.count:
                for total, variable in zip(self.sums, self.model.trainable_variables, strict=True):
                    variable.assign((total / self.count).astype(variable.dtype))

    return _Average()


def _recompute_batch_statistics(keras_model: Any, x: np.ndarray, batch_size: int) -> None:
    """Set the batch-norm statistics of `keras_model` to those of its current weights on `x`.

    The moving averages were gathered under the raw weights; averaged weights shift them.
    """
    keras = _keras()
    norms = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return
    momentum = [layer.momentum for layer in norms]
    order = np.random.default_rng(0).permutation(len(x))
    try:
        for count, start in enumerate(range(0, len(x), batch_size)):
            for layer in norms:  # a plain mean over the batches: the k-th batch weighs 1/(k+1)
                layer.momentum = count / (count + 1)
            keras_model(x[order[start : start + batch_size]], training=True)
    finally:
        for layer, value in zip(norms, momentum, strict=True):
            layer.momentum = value


def _plain_batch_statistics(keras_model: Any, x: np.ndarray, batch_size: int) -> None:
    """Set each batch-norm layer's statistics to the exact mean and variance of its input over `x`,
    the network run as it scores (earlier layers with their new statistics), layer by layer."""
    keras = _keras()
    norms = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        upstream = keras.Model(keras_model.inputs[0], layer.input)
        total = np.zeros(layer.moving_mean.shape, dtype=np.float64)
        squares = np.zeros_like(total)
        count = 0
        for start in range(0, len(x), batch_size):
            a = np.asarray(upstream(x[start : start + batch_size], training=False), dtype=np.float64)
            a = a.reshape(-1, a.shape[-1])
            total += a.sum(axis=0)
            squares += (a * a).sum(axis=0)
            count += len(a)
        if not count:
            return
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(squares / count - mean * mean, 0.0).astype(np.float32))


def _average(members: list[Model], labels: list[str], spec: FeatureSpec) -> Model:
    """Return one model whose scores are the mean of the members' (one network, one .tflite)."""
    from micmon.model import Model

    keras = _keras()
    inputs = keras.Input(shape=spec.shape)
    outputs = keras.layers.Average(name="micmon_ensemble")(
        [m.keras_model(inputs, training=False) for m in members]
    )
    combined = keras.Model(inputs, outputs)
    combined.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Model(labels=labels, spec=spec, keras_model=combined)


def _augmented(data: Dataset, kind: str, opts: TrainingOptions) -> Dataset:
    """Return `data` with augmented copies of its training windows (cnn with augment only)."""
    if kind != "cnn" or not opts.augment:
        return data
    from micmon.model.augment import augment_dataset

    result: Dataset = augment_dataset(
        data,
        background_labels=[opts.background_label],
        seed=opts.seed,
        copies=opts.augment_copies,
        gain_db=opts.augment_gain_db,
        mix_probability=opts.augment_mix_probability,
        band_limit_probability=opts.augment_band_limit,
        mask_probability=opts.augment_mask,
        shift_probability=opts.augment_shift,
        eq_probability=opts.augment_eq,
        stretch_probability=opts.augment_stretch,
        background_mix_probability=opts.augment_mix_background,
    )
    return result


def _with_quiet_negatives(
    data: Dataset, spec: FeatureSpec, labels: list[str], opts: TrainingOptions
) -> Dataset:
    """Return `data` with generated quiet-room windows added as background (`quiet_negatives`)."""
    if not opts.quiet_negatives or opts.background_label not in labels:
        return data
    from micmon.model.augment import quiet_room_windows

    background = labels.index(opts.background_label)
    count = int(np.sum(data.train_classes == background) * opts.quiet_negatives)
    if count == 0:
        return data
    quiet = quiet_room_windows(spec, count, rng=np.random.default_rng([opts.seed, 25]))
    classes = np.full(count, background, dtype=np.asarray(data.train_classes).dtype)
    return data.with_training(
        np.concatenate([data.train_samples, quiet.astype(data.train_samples.dtype)]),
        np.concatenate([data.train_classes, classes]),
    )


def _with_mixup(
    data: Dataset, spec: FeatureSpec, labels: list[str], opts: TrainingOptions
) -> tuple[Dataset, np.ndarray]:
    """Return `data` with `mixup` mixes per training window added, and every training row's loss
    weight: its class's balanced weight (counted before the mixes) times its share of the mix."""
    from micmon.model.augment import mixup
    from micmon.model.model import balanced_class_weights

    classes = np.asarray(data.train_classes, dtype=np.int64)
    count = int(round(len(classes) * opts.mixup))
    x, y, share = mixup(
        data.train_samples, classes, spec=spec, count=count, rng=np.random.default_rng([opts.seed, 27])
    )
    rows = np.concatenate([classes, y])
    per_class = (
        balanced_class_weights(classes, len(labels))
        if opts.class_weight == "balanced"
        else dict.fromkeys(range(len(labels)), 1.0)
    )
    weight = np.array([per_class[int(c)] for c in rows], dtype=np.float32)
    weight[len(classes) :] *= share
    mixed = data.with_training(
        np.concatenate([data.train_samples, x.astype(data.train_samples.dtype)]),
        rows.astype(np.asarray(data.train_classes).dtype),
    )
    return mixed, weight


def _with_hard_negatives(
    model: Model, data: Dataset, labels: list[str], opts: TrainingOptions
) -> Dataset | None:
    """Return `data` with its highest-scoring background training windows added once more."""
    if opts.background_label not in labels:
        return None
    background = labels.index(opts.background_label)
    rows = np.flatnonzero(data.train_classes == background)
    count = int(len(rows) * opts.hard_negatives)
    if count == 0:
        return None
    scores = model.scores(data.train_samples[rows])
    others = np.delete(scores, background, axis=1).max(axis=1)
    hardest = rows[np.argsort(others)[::-1][:count]]
    return data.with_training(
        np.concatenate([data.train_samples, data.train_samples[hardest]]),
        np.concatenate([data.train_classes, data.train_classes[hardest]]),
    )


def _keras() -> Any:
    """Import Keras quietly (TensorFlow's C++ banner off unless TF_CPP_MIN_LOG_LEVEL is set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return require_keras("training")


def plot_training(result: TrainingResult, folder: str | os.PathLike[str]) -> list[Path]:
    """Write the learning curves and the confusion matrix as PNG files in `folder`."""
    from micmon._plot import pyplot, save_png

    plt = pyplot(headless=True)
    out = expand_path(folder)
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in result.history:
                ax.plot(
                    range(1, len(result.history[key]) + 1),
                    result.history[key],
                    style,
                    label="validation" if key.startswith("val_") else "training",
                )
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    written.append(save_png(fig, out / PLOT_CURVES, dpi=100))
    plt.close(fig)

    labels = result.report["labels"]
    matrix = np.asarray(result.report["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black"
        )
    ax.set_title(f"accuracy {result.report['accuracy']:.3f}")
    written.append(save_png(fig, out / PLOT_CONFUSION, dpi=100))
    plt.close(fig)
    return written


__all__ = [
    "PLOT_CONFUSION",
    "PLOT_CURVES",
    "TrainingOptions",
    "TrainingResult",
    "check_destination",
    "load_datasets",
    "plot_training",
    "train",
    "training_options",
]
