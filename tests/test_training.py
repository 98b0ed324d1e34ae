"""micmon.training: the one training path (CLI, demo and benchmarks), and its report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from micmon.errors import DatasetError, ModelError, ParameterError
from micmon.evaluate import classification_report
from micmon.training import TrainingOptions, check_destination, train, training_options


def _one_plain_fit(**options: object) -> TrainingOptions:
    """Options for one fit of `epochs` (no early stopping, refit, mining or validation), plus `options`."""
    plain: dict[str, object] = dict(
        patience=0, refit=False, hard_negatives=0.0, validation_split=0.0, quantize=False
    )
    return TrainingOptions(**{**plain, **options})  # type: ignore[arg-type]


def test_classification_report_counts_and_undefined_figures() -> None:
    report = classification_report(
        np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 1]), ["negative", "positive", "other"]
    )
    assert report["windows"] == 5
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 3, 0], [0, 0, 0]]
    assert report["per_label"]["positive"]["precision"] == pytest.approx(0.75)
    assert report["per_label"]["negative"]["recall"] == pytest.approx(0.5)
    assert report["per_label"]["other"]["f1"] is None  # never present, never predicted


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(model_type="rnn"), "model_type: must be one of dense, cnn, got 'rnn'"),
        (dict(epochs=0), "epochs: must be an integer >= 1, got 0"),
        (dict(validation_split=1.0), "validation_split: must be in [0, 1), got 1.0"),
        (dict(class_weight="inverse"), "class_weight: must be one of balanced, none"),
        (dict(augment_mix_background=1.5), "augment_mix_background: must be in [0, 1], got 1.5"),
        (dict(mixup=-0.1), "mixup: must be in [0, 1], got -0.1"),
        (
            dict(level_floor=True, frontend="log"),
            "level_floor: only the relative+level front end has a level channel",
        ),
    ],
)
def test_bad_options_name_the_parameter(options: dict, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        TrainingOptions(**options)
    assert message in str(caught.value)
    assert caught.value.parameter == next(iter(options))


def test_options_from_the_config_section_ignore_other_keys() -> None:
    opts = training_options({"epochs": 3, "labels": ["a", "b"], "not_an_option": 1})
    assert (opts.epochs, opts.labels) == (3, ("a", "b"))


def test_destination_with_a_model_needs_overwrite(trained_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="already holds a model"):
        check_destination(trained_model_dir)
    assert check_destination(trained_model_dir, overwrite=True) == trained_model_dir


def test_a_single_label_cannot_be_trained(tmp_path: Path) -> None:
    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec

    spec = FeatureSpec(sample_rate=16000, window_seconds=1.0, high_freq=8000.0, bins=10)
    data = Dataset(
        np.zeros((4, 10), np.float32),
        np.zeros(4, np.int64),
        labels=["negative"],
        spec=spec,
        name="only_negative",
    )
    with pytest.raises(DatasetError, match="at least two labels"):
        train([data], TrainingOptions(epochs=1))


@pytest.mark.slow
def test_train_holds_out_recordings_reports_and_saves(datasets_dir: Path, tmp_path: Path) -> None:
    epochs: list[int] = []
    messages: list[str] = []
    result = train(
        datasets_dir,
        TrainingOptions(epochs=3, holdout_recordings=1, hard_negatives=0.0, patience=0, seed=1),
        on_epoch=lambda epoch, logs: epochs.append(epoch),
        on_message=messages.append,
    )
    assert epochs == [1, 2, 3]
    assert result.model_type == "dense"  # the datasets hold spectrum features
    assert len(result.held_out) == 1 and result.held_out[0] not in result.datasets
    assert any("held out for calibration" in m for m in messages)
    assert set(result.report) >= {"accuracy", "per_label", "confusion_matrix", "split"}
    assert result.report["split"] == "recordings"
    assert len(result.history["loss"]) == 3
    out = result.save(tmp_path / "model")
    meta = json.loads((out / "micmon.json").read_text())
    assert meta["training"]["holdout_recordings"] == result.held_out
    assert meta["training"]["model_type"] == "dense"
    assert meta["metrics"]["per_label"] == result.report["per_label"]
    assert (out / "model.tflite").is_file()

    # the served .tflite is quantized by default: smaller, and it scores as the network does
    from dataclasses import replace

    from micmon.model import Model

    assert meta["tflite"] == {"quantized": True} and meta["training"]["quantize"] is True
    exact = replace(result, options=replace(result.options, quantize=False)).save(tmp_path / "exact")
    assert json.loads((exact / "micmon.json").read_text())["tflite"] == {"quantized": False}
    assert (out / "model.tflite").stat().st_size < 0.5 * (exact / "model.tflite").stat().st_size
    spec = result.model.spec
    assert spec is not None
    x = np.random.default_rng(0).random((64, *spec.shape)).astype(np.float32)
    keras_scores = result.model.scores(x)
    np.testing.assert_allclose(Model.load(exact).scores(x), keras_scores, atol=1e-4)
    quantized = Model.load(out).scores(x)
    assert np.abs(quantized - keras_scores).max() < 0.05
    assert (quantized.argmax(axis=1) == keras_scores.argmax(axis=1)).mean() >= 0.9


@pytest.mark.slow
def test_early_stopping_and_hard_negatives(datasets_dir: Path) -> None:
    from micmon.dataset import Dataset

    messages: list[str] = []
    # Held-out windows whose labels contradict the training ones: the better the fit, the worse
    # the held-out loss, so training stops after `patience` epochs without improvement.
    data = Dataset.combine(Dataset.scan(datasets_dir))
    flipped = np.where(data.classes == 0, 1, 0)
    recordings = [
        Dataset(data.samples, data.classes, labels=data.labels, spec=data.spec, name="normal"),
        Dataset(data.samples, flipped, labels=data.labels, spec=data.spec, name="flipped"),
    ]
    stopped = train(
        recordings, TrainingOptions(epochs=30, patience=2, validation_split=0.5, split_by_recording=True)
    )
    # each round ends `patience` epochs after early stopping's floor (15 % of 30, then of 15)
    assert len(stopped.history["loss"]) <= (5 + 2) + (3 + 2) < 30 + 15
    mined = train(
        datasets_dir, TrainingOptions(epochs=4, hard_negatives=0.2, seed=2), on_message=messages.append
    )
    assert any(m.startswith("hard negatives: ") for m in messages)
    assert len(mined.history["loss"]) == sum(mined.options.planned_epochs) == 4 + 2  # then half as many
    assert TrainingOptions(epochs=1).planned_epochs == (1, 1)
    assert TrainingOptions(epochs=30, hard_negatives=0.0).planned_epochs == (30,)
    assert mined.options.to_dict()["hard_negatives"] == 0.2


def test_warmup_keeps_a_share_of_the_epochs_however_early_validation_loss_is_lowest(
    datasets_dir: Path,
) -> None:
    from dataclasses import replace

    from micmon.dataset import Dataset

    # held-out labels contradict the training ones: the held-out loss is lowest after epoch 1
    data = Dataset.combine(Dataset.scan(datasets_dir))
    flipped = np.where(data.classes == 0, 1, 0)
    recordings = [
        Dataset(data.samples, data.classes, labels=data.labels, spec=data.spec, name="normal"),
        Dataset(data.samples, flipped, labels=data.labels, spec=data.spec, name="flipped"),
    ]
    opts = TrainingOptions(epochs=8, patience=1, validation_split=0.5, hard_negatives=0.0, seed=4, warmup=0.0)
    (eager,) = train(recordings, opts).report["refit"]
    (warm,) = train(recordings, replace(opts, warmup=0.5)).report["refit"]
    (floor,) = train(recordings, replace(opts, epochs=20, warmup=TrainingOptions().warmup)).report["refit"]
    assert eager == [1]
    assert warm[0] >= 4  # half of the 8 epochs, whatever the held-out loss said before
    assert floor[0] >= 3  # the default: early stopping never ends a fit of 20 epochs before 15 % of them


def test_weight_averaging_changes_only_the_fits_early_stopping_does_not_end(datasets_dir: Path) -> None:
    from dataclasses import replace

    def weights(opts: TrainingOptions) -> list[np.ndarray]:
        return list(train(datasets_dir, opts).model.keras_model.get_weights())

    stopped = TrainingOptions(epochs=3, patience=2, refit=False, hard_negatives=0.0, seed=2)
    for plain, averaged in zip(
        weights(stopped), weights(replace(stopped, weight_averaging=0.5)), strict=True
    ):
        np.testing.assert_allclose(averaged, plain, atol=1e-5)  # early stopping restores its best
    full = replace(stopped, patience=0)
    plain, averaged = train(datasets_dir, full), train(datasets_dir, replace(full, weight_averaging=0.5))
    pairs = zip(plain.model.keras_model.get_weights(), averaged.model.keras_model.get_weights(), strict=True)
    assert any(not np.allclose(a, b, atol=1e-5) for a, b in pairs)
    assert averaged.report["accuracy"] >= plain.report["accuracy"] - 0.05  # as good a network


def test_weight_averager_sets_the_mean_of_the_last_steps() -> None:
    import keras

    from micmon.training import _weight_averager

    # one weight, input 1, loss = output: plain SGD moves the weight by -0.1 a step (w_t = -0.1 t)
    net = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda truth, output: keras.ops.mean(output))
    x = np.ones((10, 1), dtype=np.float32)
    net.fit(x, x, batch_size=1, epochs=1, verbose=0, callbacks=[_weight_averager(0.3)])
    assert net.get_weights()[0].item() == pytest.approx(-0.9)  # mean of w_8, w_9, w_10


def test_recomputed_batch_statistics_are_the_mean_over_the_windows() -> None:
    import keras

    from micmon.training import _recompute_batch_statistics

    x = np.random.default_rng(0).normal(2.0, 3.0, size=(100, 6)).astype(np.float32)
    dense = keras.layers.Dense(4, use_bias=False)
    norm = keras.layers.BatchNormalization(momentum=0.9)
    net = keras.Sequential([keras.Input((6,)), dense, norm])
    norm.moving_mean.assign(np.full(4, 50.0, dtype=np.float32))  # stale: gathered under other weights
    _recompute_batch_statistics(net, x, batch_size=25)
    h = x @ dense.get_weights()[0]
    batches = np.split(h[np.random.default_rng(0).permutation(100)], 4)
    np.testing.assert_allclose(norm.moving_mean.numpy(), h.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        norm.moving_variance.numpy(), np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-3
    )
    assert norm.momentum == 0.9  # the layer's own momentum is back for later training


@pytest.mark.slow
def test_refit_trains_on_every_recording_for_the_epochs_early_stopping_kept(datasets_dir: Path) -> None:
    from dataclasses import replace

    from micmon.dataset import Dataset

    recordings = Dataset.scan(datasets_dir)
    opts = TrainingOptions(
        epochs=4, patience=2, validation_split=0.5, hard_negatives=0.2, seed=3, refit=False
    )
    plain = train(recordings, opts)
    messages: list[str] = []
    refitted = train(recordings, replace(opts, refit=True), on_message=messages.append)
    assert "refit" not in plain.report
    (kept,) = refitted.report["refit"]
    assert len(kept) == 2 and 1 <= kept[0] <= 4 and 1 <= kept[1] <= 2  # first fit, hard negatives
    total = sum(len(d) for d in recordings)
    assert any(m.startswith(f"fitting again on all {total} windows") for m in messages)
    # the report stays the early-stopped network's; the saved model is the one fitted on everything
    assert refitted.report["split"] == "recordings"
    assert refitted.report["accuracy"] == pytest.approx(plain.report["accuracy"], abs=0.25)
    validation = Dataset.combine(recordings, 0.5, by_recording=True, seed=3).validation_samples
    assert not np.allclose(refitted.model.scores(validation), plain.model.scores(validation))
    assert refitted.metadata()["refit"] is True


def test_refit_without_early_stopping_changes_nothing(datasets_dir: Path) -> None:
    result = train(datasets_dir, TrainingOptions(epochs=1, patience=0, refit=True, hard_negatives=0.0))
    assert "refit" not in result.report


def test_new_training_options_are_checked() -> None:
    for options, name in (
        (dict(augment_mask=1.5), "augment_mask"),
        (dict(hard_negatives=1.0), "hard_negatives"),
        (dict(warmup=1.0), "warmup"),
        (dict(weight_averaging=1.0), "weight_averaging"),
        (dict(patience=-1), "patience"),
        (dict(augment_copies=0), "augment_copies"),
        (dict(pooling="min"), "pooling"),
        (dict(frontend="mfcc"), "frontend"),
    ):
        with pytest.raises(ParameterError) as caught:
            TrainingOptions(**options)
        assert caught.value.parameter == name


@pytest.mark.slow
def test_an_ensemble_is_one_model_whose_scores_are_the_members_mean(
    datasets_dir: Path, tmp_path: Path
) -> None:
    from micmon.model import Model

    result = train(datasets_dir, TrainingOptions(epochs=2, ensemble=2, seed=3, quantize=False))
    layer_names = [layer.name for layer in result.model.keras_model.layers]
    assert "micmon_ensemble" in layer_names
    out = result.save(tmp_path / "ensemble")
    served = Model.load(out)  # one .tflite, scored in one call through LiteRT
    spec = result.model.spec
    assert spec is not None
    x = np.random.default_rng(0).random((5, *spec.shape))
    assert np.allclose(served.scores(x), result.model.scores(x), atol=1e-4)


def test_plain_batch_statistics_are_the_exact_ones_of_each_layers_input() -> None:
    import keras

    from micmon.training import _plain_batch_statistics

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(90, 6)).astype(np.float32)
    first, second = keras.layers.Dense(5, use_bias=False), keras.layers.Dense(3, use_bias=False)
    norm1, norm2 = keras.layers.BatchNormalization(), keras.layers.BatchNormalization()
    net = keras.Sequential([keras.Input((6,)), first, norm1, keras.layers.ReLU(), second, norm2])
    for norm in (norm1, norm2):  # stale: gathered on other (augmented) windows
        norm.moving_mean.assign(np.full(norm.moving_mean.shape, 40.0, dtype=np.float32))
    _plain_batch_statistics(net, x, batch_size=32)  # 32 + 32 + 26: the statistics are not per batch
    h1 = x @ first.get_weights()[0]
    np.testing.assert_allclose(norm1.moving_mean.numpy(), h1.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm1.moving_variance.numpy(), h1.var(axis=0), rtol=1e-4)
    gamma, beta, mean, var = norm1.get_weights()
    h2 = np.maximum((h1 - mean) / np.sqrt(var + norm1.epsilon) * gamma + beta, 0.0) @ second.get_weights()[0]
    np.testing.assert_allclose(norm2.moving_mean.numpy(), h2.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm2.moving_variance.numpy(), h2.var(axis=0), rtol=1e-3, atol=1e-5)


def test_plain_batch_norm_sets_a_trained_cnn_to_the_statistics_of_its_windows_as_recorded() -> None:
    from dataclasses import replace

    import keras

    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 0.2, size=(60, *spec.shape)).astype(np.float32)
    y = np.array([0, 1] * 30)
    x[y == 0, :, 10:14] += 0.8  # the sound: a band of energy
    data = [
        Dataset(x[:30], y[:30], labels=["beep", "negative"], spec=spec, name="a"),
        Dataset(x[30:], y[30:], labels=["beep", "negative"], spec=spec, name="b"),
    ]
    opts = TrainingOptions(
        epochs=2, patience=0, refit=False, hard_negatives=0.0, validation_split=0.0, quantize=False
    )

    def first_norm_gap(options: TrainingOptions) -> float:
        net = train(data, options).model.keras_model
        norm = next(layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization))
        a = np.asarray(keras.Model(net.inputs[0], norm.input)(x, training=False))
        exact = a.reshape(-1, a.shape[-1]).mean(axis=0)
        return float(np.max(np.abs(norm.moving_mean.numpy() - exact)))

    assert first_norm_gap(replace(opts, plain_batch_norm=True)) < 1e-4
    assert first_norm_gap(opts) > 1e-3  # the moving averages of augmented batches differ


def test_quiet_negatives_are_a_nights_hiss_trained_as_background() -> None:
    import subprocess
    from dataclasses import replace

    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec, compute_batch
    from micmon.model.augment import quiet_room_windows
    from micmon.training import _with_quiet_negatives

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    n, rate = spec.window_samples, spec.sample_rate
    t = np.arange(n) / rate

    def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
        return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20) * 32767).astype(np.int16)

    def applause(gen: np.random.Generator) -> np.ndarray:  # a crowd's claps: dense bursts of noise
        envelope = np.zeros(n)
        for start in gen.uniform(-0.05, 0.5, size=40):
            envelope += np.where(t >= start, np.exp(-(t - start) / 0.01), 0.0)
        return at_level(gen.standard_normal(n) * envelope, gen.uniform(-30, -10))

    def voice(gen: np.random.Generator) -> np.ndarray:  # talk: harmonics of a moving pitch
        pitch = gen.uniform(100, 300) * (1 + 0.05 * np.sin(2 * np.pi * gen.uniform(2, 6) * t))
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        return at_level(sum(np.sin(h * phase) / h for h in range(1, 12)), gen.uniform(-30, -10))

    gen = np.random.default_rng(2)
    x = compute_batch(np.stack([applause(gen) if i % 2 == 0 else voice(gen) for i in range(120)]), spec)
    y = np.array([0, 1] * 60)
    labels = ["applause", "negative"]
    data = [
        Dataset(x[:60], y[:60], labels=labels, spec=spec, name="a"),
        Dataset(x[60:], y[60:], labels=labels, spec=spec, name="b"),
    ]
    # a night's room: ffmpeg's pink and brown noise, 60 dB below full scale, as 16-bit audio
    hiss = []
    for colour in ("pink", "brown"):
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"anoisesrc=color={colour}:sample_rate=16000:d=4"]
            + ["-f", "s16le", "-"],
            capture_output=True,
            check=True,
        ).stdout
        audio = np.frombuffer(raw, dtype=np.int16).astype(np.float64)
        hiss.append(at_level(audio, -60.0).reshape(-1, n))
    hiss_x = compute_batch(np.concatenate(hiss), spec)
    claps_x = compute_batch(np.stack([applause(np.random.default_rng(100 + i)) for i in range(10)]), spec)
    opts = _one_plain_fit(epochs=12, frontend="relative", quiet_negatives=0.5, seed=1)
    # the windows are added as background, half as many as the recorded background windows
    combined = Dataset.combine(data, 0.0)
    grown = _with_quiet_negatives(combined, spec, labels, opts)
    assert len(grown.train_samples) == len(combined.train_samples) + 30
    assert (grown.train_classes[-30:] == 1).all()
    np.testing.assert_array_equal(
        grown.train_samples[-30:], quiet_room_windows(spec, 30, rng=np.random.default_rng([1, 25]))
    )
    assert _with_quiet_negatives(combined, spec, labels, replace(opts, quiet_negatives=0.0)) is combined
    # and the network trained with them hears the night's hiss as background, the claps as applause
    model = train(data, opts).model
    assert float(model.scores(hiss_x)[:, 0].max()) < 0.2
    assert float(model.scores(claps_x)[:, 0].min()) > 0.9


def test_mixup_adds_mixes_with_soft_labels_as_loss_weights_and_still_learns_the_sound() -> None:
    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec
    from micmon.model.augment import mixup
    from micmon.model.model import balanced_class_weights
    from micmon.training import _with_mixup

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    rng = np.random.default_rng(4)
    x = rng.normal(-4.0, 0.3, size=(80, *spec.shape)).astype(np.float32)
    y = np.array([0] * 20 + [1] * 60)  # a quarter of the windows hold the sound
    x[y == 0, :, 10:14] += 2.0  # the sound: a band of energy
    labels = ["beep", "negative"]
    data = [
        Dataset(x[::2], y[::2], labels=labels, spec=spec, name="a"),
        Dataset(x[1::2], y[1::2], labels=labels, spec=spec, name="b"),
    ]
    opts = _one_plain_fit(epochs=8, mixup=0.5, augment=False, seed=2)
    combined = Dataset.combine(data, 0.0)
    grown, weight = _with_mixup(combined, spec, labels, opts)
    again = np.random.default_rng([2, 27])
    mx, my, share = mixup(combined.train_samples, combined.train_classes, spec=spec, count=40, rng=again)
    # the 80 windows as they were, then 40 mixes (a second row for each mix of two classes)
    assert len(grown.train_samples) == len(weight) == 80 + len(mx)
    np.testing.assert_array_equal(grown.train_samples[80:], mx)
    np.testing.assert_array_equal(grown.train_classes[80:], my)
    per_class = balanced_class_weights(combined.train_classes, 2)  # counted before the mixes
    assert per_class[0] == pytest.approx(2.0) and per_class[1] == pytest.approx(2 / 3)
    expected = np.array([per_class[int(c)] for c in grown.train_classes])
    expected[80:] *= share
    np.testing.assert_allclose(weight, expected, rtol=1e-6)
    # a network trained with the mixes still tells the sound from the rest (less sure: soft labels)
    model = train(data, opts).model
    scores = model.scores(x)[:, 0]
    assert scores[y == 0].min() > 0.6 and scores[y == 1].max() < 0.4


def test_relative_with_level_frontend_learns_what_only_the_level_tells_apart() -> None:
    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    gen = np.random.default_rng(3)

    def windows(level: float, count: int) -> np.ndarray:  # one kind of sound at about `level`
        shapes = 0.05 * gen.standard_normal((count, *spec.shape))
        shapes[:, :, 8:12] += 0.2  # a band that stands out
        return (shapes + level + gen.uniform(-0.02, 0.02, size=(count, 1, 1))).astype(np.float32)

    # the same sound loud (the target) and 20 dB quieter (the room): relative to its own level,
    # a window of one is a window of the other
    x = np.concatenate([windows(0.55, 40), windows(0.35, 40)])
    y = np.array([0] * 40 + [1] * 40)
    labels = ["loud", "negative"]
    order = gen.permutation(80)
    data = [
        Dataset(x[order[:40]], y[order[:40]], labels=labels, spec=spec, name="a"),
        Dataset(x[order[40:]], y[order[40:]], labels=labels, spec=spec, name="b"),
    ]
    opts = _one_plain_fit(epochs=15, augment=False, frontend="relative+level", seed=1)
    new = np.concatenate([windows(0.55, 10), windows(0.35, 10)])
    scores = train(data, opts).model.scores(new)[:, 0]
    assert scores[:10].min() > 0.9 and scores[10:].max() < 0.1, scores


@pytest.mark.parametrize("mixup", [0.0, 0.5])
def test_level_floor_hears_a_target_quieter_than_any_trained_on_at_the_quietest_level(mixup: float) -> None:
    from micmon.dataset import Dataset
    from micmon.features import FeatureSpec
    from micmon.model.level import RelativeWithLevel
    from micmon.model.model import NORMALIZATION_LAYER
    from micmon.training import LEVEL_FLOOR_PERCENTILE

    spec = FeatureSpec(sample_rate=16000, window_seconds=0.5, high_freq=8000.0, feature="logmel")
    gen = np.random.default_rng(4)

    def windows(level: float, count: int, *, band: bool) -> np.ndarray:
        shapes = 0.05 * gen.standard_normal((count, *spec.shape))
        if band:  # the target: a band that stands out
            shapes[:, :, 8:12] += 0.2
        return (shapes + level + gen.uniform(-0.03, 0.03, size=(count, 1, 1))).astype(np.float32)

    targets = windows(0.55, 40, band=True)
    x = np.concatenate([targets, windows(0.45, 20, band=False), windows(0.6, 20, band=False)])
    y = np.array([0] * 40 + [1] * 40)
    labels = ["bell", "negative"]
    data = [Dataset(x, y, labels=labels, spec=spec, name="a")]
    opts = _one_plain_fit(
        epochs=15, augment=False, frontend="relative+level", level_floor=True, mixup=mixup, seed=2
    )
    keras_model = train(data, opts).model.keras_model
    layer = next(la for la in keras_model.layers if isinstance(la, RelativeWithLevel))
    standardize = keras_model.get_layer(NORMALIZATION_LAYER)
    # the floor is in the units the layer reads: the targets' levels after the input standardisation;
    # mixup's mixes (a target at a share of its power) are not targets heard at that level
    levels = np.asarray(standardize(targets)).reshape(40, -1).mean(axis=1)
    assert layer.floor == pytest.approx(np.percentile(levels, LEVEL_FLOOR_PERCENTILE), abs=1e-4)
    # 20 and 30 dB quieter than any target trained on: heard at the floor, still the target
    quiet = np.concatenate([windows(0.35, 10, band=True), windows(0.25, 10, band=True)])
    level_channel = np.asarray(layer(standardize(quiet)))[..., 1]
    np.testing.assert_allclose(level_channel, layer.floor, atol=1e-5)
    scores = keras_model.predict(quiet, verbose=0)[:, 0]
    flat = np.concatenate([windows(0.35, 10, band=False), windows(0.25, 10, band=False)])
    others = keras_model.predict(flat, verbose=0)[:, 0]
    assert scores.mean() > 0.5 > others.mean(), (scores, others)
    # augmented copies at random gains reach lower: so does the floor
    with_gain = replace(opts, augment=True, augment_gain_db=12.0, epochs=1)
    floored = next(
        la for la in train(data, with_gain).model.keras_model.layers if isinstance(la, RelativeWithLevel)
    )
    assert floored.floor < layer.floor
