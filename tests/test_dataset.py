"""micmon.dataset: DatasetWriter files, one label index across files, the original npz format, splits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from micmon.audio import AudioSegment
from micmon.dataset import Dataset, DatasetWriter
from micmon.dataset.dataset import choose_recordings
from micmon.errors import DatasetError, ParameterError
from micmon.features import FeatureSpec, compute_batch
from micmon.model import Model
from micmon.model.networks import dense_layers

RATE, WINDOW = 16000, 0.5
LOW, HIGH, BINS = 250, 7500, 20
#: A different tone per label, so the features tell the labels apart.
TONE_HZ = {"negative": 500.0, "other": 2000.0, "positive": 3000.0}


def window(label: str | None, start: float = 0.0, *, seed: int = 0) -> AudioSegment:
    """One 0.5 s window: the label's tone over a little noise (noise only without a label)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * WINDOW)) / RATE
    x = 0.02 * rng.standard_normal(len(t))
    if label is not None:
        x += 0.3 * np.sin(2 * np.pi * TONE_HZ[label] * t)
    return AudioSegment(np.round(x * 32767).astype(np.int16), RATE, label=label, start=start)


def write(path: Path, labels: Sequence[str | None], **options: object) -> Path:
    with DatasetWriter(path, LOW, HIGH, BINS, **options) as writer:  # type: ignore[arg-type]
        for i, label in enumerate(labels):
            writer += window(label, i * WINDOW, seed=i)
    return path


# -- DatasetWriter ---------------------------------------------------------------------------------------
def test_writer_stores_the_original_keys_labels_and_feature_spec(tmp_path: Path) -> None:
    labels = ["negative", "positive", "positive", "negative", "positive"]
    path = write(tmp_path / "rec.npz", labels)
    with np.load(path, allow_pickle=False) as data:
        assert {"samples", "classes", "cutoff_frequencies", "labels", "spec"} <= set(data.files)
        samples, classes = data["samples"], data["classes"]
        assert data["labels"].tolist() == ["negative", "positive"]
        assert data["cutoff_frequencies"].tolist() == [LOW, HIGH]
        spec = FeatureSpec.from_json(str(data["spec"]))
    assert spec == FeatureSpec(
        sample_rate=RATE, window_seconds=WINDOW, low_freq=LOW, high_freq=HIGH, bins=BINS, scale="log"
    )
    assert samples.dtype == np.float32
    assert samples.shape == (5, BINS)
    assert classes.tolist() == [0, 1, 1, 0, 1]
    expected = compute_batch(np.stack([window(lb, seed=i).audio for i, lb in enumerate(labels)]), spec)
    np.testing.assert_allclose(samples, expected, rtol=1e-6)
    # The label's tone is in its band.
    assert samples[1].argmax() == int((TONE_HZ["positive"] - LOW) / (HIGH - LOW) * BINS)


@pytest.mark.parametrize("hop_seconds", [None, 0.5, 0.25, 0.33])
def test_writer_shares_frames_of_overlapping_windows_and_equals_per_window_features(
    tmp_path: Path, hop_seconds: float | None
) -> None:
    from micmon.dataset.writer import BATCH_WINDOWS

    spec = FeatureSpec(
        sample_rate=RATE, window_seconds=1.0, hop_seconds=hop_seconds, high_freq=8000.0, feature="logmel"
    )
    audio = (np.random.default_rng(4).standard_normal(RATE * 80) * 2000).astype(np.int16)
    step = int(spec.hop * RATE)
    starts = list(range(0, len(audio) - spec.window_samples + 1, step))
    windows = np.stack([audio[s : s + spec.window_samples] for s in starts])
    labels = [None if i % 7 == 3 else ("positive" if i % 2 else "negative") for i in range(len(starts))]
    assert sum(lb is not None for lb in labels) > BATCH_WINDOWS  # more than one batch, written in parts
    with DatasetWriter(tmp_path / "rec.npz", spec=spec) as writer:
        for s, w, label in zip(starts, windows, labels, strict=True):
            writer += AudioSegment(w, RATE, label=label, start=s / RATE)
        if hop_seconds is not None and hop_seconds < 1.0:
            assert writer._frames is not None and writer._frames.computed < len(writer) * spec.frames
    kept = [i for i, lb in enumerate(labels) if lb is not None]
    data = Dataset.load(tmp_path / "rec.npz")
    assert data.samples.shape == (len(kept), *spec.shape)
    np.testing.assert_allclose(data.samples, compute_batch(windows[kept], spec), atol=1e-5)
    assert data.spec == spec


def test_writer_options_reach_the_spec(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "lin", LOW, HIGH, BINS, scale="linear")
    assert writer.path == str(tmp_path / "lin.npz")  # the suffix is added
    writer += window("negative")
    writer.close()
    data = Dataset.load(tmp_path / "lin.npz")
    assert data.spec is not None
    assert data.spec.scale == "linear"
    assert (data.low_freq, data.high_freq) == (LOW, HIGH)


def test_writer_skips_unlabelled_windows(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "rec.npz", LOW, HIGH, BINS) as writer:
        for i, label in enumerate(["negative", None, "positive", None, None]):
            writer += window(label, i * WINDOW)
        assert writer.skipped == 3
        assert len(writer) == 2
        assert writer.label_counts == {"negative": 1, "positive": 1}
    data = Dataset.load(tmp_path / "rec.npz")
    assert len(data) == 2
    assert data.labels == ["negative", "positive"]


def test_writer_with_only_unlabelled_windows_writes_an_empty_dataset(tmp_path: Path) -> None:
    write(tmp_path / "rec.npz", [None, None])
    data = Dataset.load(tmp_path / "rec.npz")
    assert data.samples.shape == (0, BINS)
    assert data.labels == []


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path / "rec.npz", ["negative"])
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=f"^{path}: already exists; pass overwrite=True"):
        DatasetWriter(path, LOW, HIGH, BINS)
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(tmp_path / "rec", LOW, HIGH, BINS)  # the .npz suffix is added first
    assert path.read_bytes() == before
    write(path, ["positive", "positive"], overwrite=True)
    assert Dataset.load(path).labels == ["positive"]
    assert len(Dataset.load(path)) == 2


def test_writer_writes_nothing_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="stop"):
        with DatasetWriter(tmp_path / "rec.npz", LOW, HIGH, BINS) as writer:
            writer += window("negative")
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    # ... and an existing file is left as it was.
    path = write(tmp_path / "old.npz", ["negative"])
    before = path.read_bytes()
    with pytest.raises(RuntimeError), DatasetWriter(path, LOW, HIGH, BINS, overwrite=True) as writer:
        writer += window("positive")
        raise RuntimeError("stop")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["old.npz"]


def test_writer_rejects_windows_of_another_format(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "rec.npz", LOW, HIGH, BINS) as writer:
        writer += window("negative")
        other = AudioSegment(np.zeros(RATE, dtype=np.int16), RATE, label="negative", start=3.0)
        with pytest.raises(
            ParameterError,
            match=r"window at 3.000 s is 1 s at 16000 Hz x 1 channels, "
            r"but the dataset holds 0.5 s at 16000 Hz x 1",
        ):
            writer += other
    with pytest.raises(DatasetError, match="writer already closed"):
        writer += window("negative")


def test_writer_rejects_bad_cutoffs(tmp_path: Path) -> None:
    with (
        pytest.raises(ParameterError, match=r"high_freq: 9000 Hz is above the Nyquist"),
        DatasetWriter(tmp_path / "rec.npz", 250, 9000, BINS) as writer,
    ):
        writer += window("negative")
    assert list(tmp_path.iterdir()) == []


# -- one label index across files (pitfall 2) ------------------------------------------------------------
@pytest.fixture()
def mixed_dir(tmp_path: Path) -> Path:
    """Three datasets holding different label subsets."""
    write(tmp_path / "a_only_positive.npz", ["positive", "positive", "positive"])
    write(tmp_path / "b_both.npz", ["negative", "positive", "negative"])
    write(tmp_path / "c_other.npz", ["other", "negative"])
    return tmp_path


def test_scan_gives_one_label_one_index_across_files(mixed_dir: Path) -> None:
    datasets = Dataset.scan(mixed_dir)
    assert [d.name for d in datasets] == ["a_only_positive", "b_both", "c_other"]
    for d in datasets:
        assert d.labels == ["negative", "other", "positive"]
    a, b, c = datasets
    assert a.classes.tolist() == [2, 2, 2]  # not 0, as the original's per-file index gave
    assert b.classes.tolist() == [0, 2, 0]
    assert c.classes.tolist() == [1, 0]
    combined = Dataset.combine(datasets)
    assert combined.class_counts() == {"negative": 3, "other": 1, "positive": 4}
    # Every "positive" window has the positive tone's band as its peak, whatever file it came from.
    peak = int((TONE_HZ["positive"] - LOW) / (HIGH - LOW) * BINS)
    assert (combined.samples[combined.classes == 2].argmax(axis=1) == peak).all()


def test_a_file_alone_is_indexed_on_its_own_labels_or_on_a_given_list(mixed_dir: Path) -> None:
    alone = Dataset.load(mixed_dir / "a_only_positive.npz")
    assert alone.labels == ["positive"]
    assert alone.classes.tolist() == [0, 0, 0]
    given = Dataset.load(mixed_dir / "a_only_positive.npz", labels=["negative", "positive"])
    assert given.labels == ["negative", "positive"]
    assert given.classes.tolist() == [1, 1, 1]


def test_scan_with_a_label_list(mixed_dir: Path) -> None:
    order = ["positive", "other", "negative", "unused"]
    datasets = Dataset.scan(mixed_dir, labels=order)
    assert all(d.labels == order for d in datasets)
    assert datasets[0].classes.tolist() == [0, 0, 0]
    assert datasets[1].classes.tolist() == [2, 0, 2]


def test_scan_with_a_label_list_missing_a_label(mixed_dir: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"c_other.npz: label\(s\) 'other' are not in the label "
        r"list \['negative', 'positive'\]; add them or relabel",
    ):
        Dataset.scan(mixed_dir, labels=["negative", "positive"])


def test_fixture_datasets_from_real_recordings(datasets_dir: Path) -> None:
    datasets = Dataset.scan(datasets_dir, validation_split=0.25)
    assert len(datasets) == 4
    spec = datasets[0].spec
    assert spec is not None
    assert (spec.sample_rate, spec.window_seconds, spec.low_freq, spec.high_freq, spec.bins, spec.scale) == (
        44100,
        2.0,
        250,
        7500,
        100,
        "log",
    )
    for i, d in enumerate(datasets):
        assert d.labels == ["negative", "positive"]
        assert d.samples.shape == (20, 100)  # 40 s in 2 s windows
        # Events last 12 s from 6 + 4 i s: six whole positive windows.
        assert d.class_counts() == {"negative": 14, "positive": 6}, d.name
        starts = 6 + 4 * i
        expected = [1 if starts <= 2 * k < starts + 12 else 0 for k in range(20)]
        assert d.classes.tolist() == expected
        assert len(d.validation_samples) == 5 and len(d.train_samples) == 15


# -- the original format ---------------------------------------------------------------------------------
def write_original(path: Path, n: int = 10, bins: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        samples=rng.random((n, bins)),
        classes=np.arange(n) % 2,
        cutoff_frequencies=np.array([250, 7500]),
    )
    return path


def test_an_original_format_npz_loads(tmp_path: Path) -> None:
    path = write_original(tmp_path / "old.npz")
    data = Dataset.load(path, validation_split=0.3)
    assert data.labels is None
    assert data.spec is None
    assert (data.low_freq, data.high_freq) == (250.0, 7500.0)
    assert data.samples.shape == (10, 100)
    assert data.samples.dtype == np.float32
    assert data.classes.tolist() == [0, 1] * 5
    assert len(data.validation_samples) == 3 and len(data.train_samples) == 7
    assert data.class_counts() == {"0": 5, "1": 5}
    datasets = Dataset.scan(tmp_path)
    assert len(datasets) == 1 and datasets[0].labels is None


def test_original_format_with_a_label_list(tmp_path: Path) -> None:
    path = write_original(tmp_path / "old.npz")
    assert Dataset.load(path, labels=["negative", "positive"]).labels == ["negative", "positive"]
    with pytest.raises(DatasetError, match=r"class index 1 does not fit the label list \['negative'\]"):
        Dataset.load(path, labels=["negative"])


def test_original_format_without_cutoffs_gets_the_defaults(tmp_path: Path) -> None:
    np.savez(tmp_path / "old.npz", samples=np.zeros((2, 5)), classes=np.array([0, 1]))
    data = Dataset.load(tmp_path / "old.npz")
    assert (data.low_freq, data.high_freq) == (20.0, 20000.0)


# -- loading errors --------------------------------------------------------------------------------------
def test_scan_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"^{tmp_path / 'missing'}: no such datasets folder$"):
        Dataset.scan(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(DatasetError, match=f"^{tmp_path}: no .npz datasets; generate them first"):
        Dataset.scan(tmp_path)


def test_scan_refuses_mismatched_feature_specs(tmp_path: Path) -> None:
    write(tmp_path / "a.npz", ["negative"])
    with DatasetWriter(tmp_path / "b.npz", LOW, HIGH, 40) as writer:
        writer += window("positive")
    with pytest.raises(
        DatasetError,
        match=r"b.npz: computed with different features than a.npz "
        r"\(bins 40 vs 20\); regenerate the datasets",
    ):
        Dataset.scan(tmp_path)


def test_datasets_of_different_datagen_hops_scan_and_train_together(tmp_path: Path) -> None:
    # the hop says how densely windows were cut, not what a window holds: both train one model
    write(tmp_path / "a.npz", ["negative", "positive"])
    write(tmp_path / "b.npz", ["positive", "negative"], hop_seconds=0.25)
    a, b = Dataset.scan(tmp_path)
    assert a.spec is not None and b.spec is not None
    assert a.spec != b.spec and a.spec.same_features(b.spec)
    assert not a.spec.same_features(b.spec.with_(bins=BINS + 1))
    model = Model(dense_layers(a.spec, 2), ["negative", "positive"], spec=a.spec)
    model.fit(b, epochs=1, verbose=0)  # a model made for a's windows trains on b's
    assert model.spec == a.spec


def test_an_empty_dataset_does_not_break_a_scan(tmp_path: Path) -> None:
    write(tmp_path / "a.npz", ["negative", "positive"])
    with DatasetWriter(tmp_path / "b_too_short.npz", LOW, HIGH, BINS):
        pass  # the recording held no whole window
    datasets = Dataset.scan(tmp_path)
    assert [len(d) for d in datasets] == [2, 0]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset file"):
        Dataset.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match=r"junk.npz: not a micmon dataset \(.npz\)"):
        Dataset.load(tmp_path / "junk.npz")
    with pytest.raises(DatasetError, match=r"junk.npz: not a micmon dataset"):
        Dataset.scan(tmp_path)
    np.savez(tmp_path / "half.npz", samples=np.zeros((2, 5)))
    with pytest.raises(
        DatasetError,
        match=r"half.npz: not a micmon dataset, the 'classes' array is "
        r"missing",
    ):
        Dataset.load(tmp_path / "half.npz")
    np.savez(
        tmp_path / "spec.npz",
        samples=np.zeros((1, 5)),
        classes=np.array([0]),
        spec=np.array(json.dumps({"bins": -1})),
    )
    with pytest.raises(DatasetError, match=r"spec.npz: bad feature spec: bins"):
        Dataset.load(tmp_path / "spec.npz")


def test_dataset_constructor_checks() -> None:
    with pytest.raises(DatasetError, match="3 samples but 2 classes"):
        Dataset(np.zeros((3, 4)), np.array([0, 1]))
    with pytest.raises(ParameterError, match=r"validation_split: must be in \[0, 1\), got 1.0"):
        Dataset(np.zeros((3, 4)), np.zeros(3), validation_split=1.0)
    with pytest.raises(DatasetError, match=r"class index 2 has no label in \['a', 'b'\]"):
        Dataset(np.zeros((3, 4)), np.array([0, 1, 2]), labels=["a", "b"])


def test_split_is_seeded_and_disjoint() -> None:
    samples = np.arange(40, dtype=np.float32).reshape(20, 2)
    a = Dataset(samples, np.zeros(20), validation_split=0.25, seed=1)
    b = Dataset(samples, np.zeros(20), validation_split=0.25, seed=1)
    np.testing.assert_array_equal(a.validation_samples, b.validation_samples)
    assert len(a.validation_samples) == 5
    train, val = set(a.train_samples[:, 0].tolist()), set(a.validation_samples[:, 0].tolist())
    assert not train & val and len(train | val) == 20


# -- combine (pitfall 13) --------------------------------------------------------------------------------
def recordings(n: int = 4, windows: int = 10) -> list[Dataset]:
    """n datasets whose first feature is the recording's number, so a window's origin is known."""
    out = []
    for r in range(n):
        samples = np.zeros((windows, 3), dtype=np.float32)
        samples[:, 0] = r
        out.append(Dataset(samples, np.arange(windows) % 2, labels=["negative", "positive"], name=f"rec{r}"))
    return out


@pytest.mark.parametrize(("split", "held_out"), [(0.25, 1), (0.5, 2), (0.1, 1)])
def test_combine_by_recording_keeps_whole_recordings_in_validation(split: float, held_out: int) -> None:
    data = Dataset.combine(recordings(), validation_split=split, by_recording=True)
    assert len(data) == 40
    train = set(data.train_samples[:, 0].tolist())
    val = set(data.validation_samples[:, 0].tolist())
    assert len(val) == held_out
    assert not train & val  # no recording on both sides
    assert train | val == {0.0, 1.0, 2.0, 3.0}
    assert len(data.validation_samples) == 10 * held_out
    assert data.labels == ["negative", "positive"]


def rooms_and_events(rooms: int, events: int, windows: int = 10) -> list[Dataset]:
    """Background-only recordings (first feature 0..rooms-1), then recordings with events too."""
    out = []
    for r in range(rooms + events):
        samples = np.zeros((windows, 3), dtype=np.float32)
        samples[:, 0] = r
        classes = np.zeros(windows) if r < rooms else np.arange(windows) % 2
        out.append(Dataset(samples, classes, labels=["negative", "positive"], name=f"rec{r}"))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_combine_by_recording_validates_on_events_whatever_the_seed(seed: int) -> None:
    # three room recordings and three with events: at random, 2 of 6 set aside are often rooms
    # only, and early stopping would then watch a loss without one positive window
    data = Dataset.combine(rooms_and_events(3, 3), validation_split=0.3, by_recording=True, seed=seed)
    assert len(set(data.validation_samples[:, 0].tolist())) == 2
    assert set(np.unique(data.validation_classes).tolist()) == {0, 1}
    assert set(np.unique(data.train_classes).tolist()) == {0, 1}


def test_choose_recordings_keeps_the_random_order_when_it_covers_the_classes() -> None:
    classes = [{0}, {0, 1}, {0}, {0, 1}, {0, 1}, {0}]
    for seed in range(30):
        order = np.random.default_rng(seed).permutation(6).tolist()
        chosen = choose_recordings(classes, 2, seed=seed)
        if {1} <= set().union(*(classes[i] for i in order[:2])):
            assert chosen == order[:2]
        else:  # the plain order held no event: the first event recording in that order comes in
            assert 1 in set().union(*(classes[i] for i in chosen)) and len(chosen) == 2


def test_choose_recordings_never_takes_a_class_away_from_the_side_that_stays() -> None:
    # one recording alone holds class 2: it stays, whatever the order; 3 of 4 with class 1 go
    classes = [{0, 1}, {0, 1}, {0, 1, 2}, {0, 1}]
    for seed in range(20):
        chosen = choose_recordings(classes, 3, seed=seed)
        assert len(chosen) == 3 and 2 not in chosen
    unknown = choose_recordings([{0}, {0}, None], 2, seed=0)  # a class unknown: the plain order
    assert unknown == np.random.default_rng(0).permutation(3)[:2].tolist()


def test_holdout_recordings_of_datasets_calibrate_on_events() -> None:
    from micmon.evaluate import holdout_recordings

    for seed in range(12):
        kept, held = holdout_recordings(rooms_and_events(4, 3), 2, seed=seed)
        assert any(np.any(d.classes == 1) for d in held)
        assert any(np.any(d.classes == 1) for d in kept)


def test_combine_by_window_mixes_recordings() -> None:
    data = Dataset.combine(recordings(), validation_split=0.25)
    assert len(data.validation_samples) == 10
    train = set(data.train_samples[:, 0].tolist())
    val = set(data.validation_samples[:, 0].tolist())
    assert train & val  # the original's split: validation windows from training recordings


def test_combine_errors() -> None:
    with pytest.raises(DatasetError, match="no datasets to combine"):
        Dataset.combine([])
    other = Dataset(np.zeros((2, 3)), np.array([0, 1]), labels=["a", "b"], name="odd")
    with pytest.raises(
        DatasetError,
        match=r"odd: labels \['a', 'b'\] differ from rec0's "
        r"\['negative', 'positive'\]; load them with Dataset.scan",
    ):
        Dataset.combine([*recordings(1), other])
    with pytest.raises(ParameterError, match="validation_split"):
        Dataset.combine(recordings(), validation_split=-0.1)


# -- overlapping windows in datagen: dense around the sounds ---------------------------------------
def test_overlapping_datagen_is_dense_around_sounds_and_sparse_in_the_background(tmp_path: Path) -> None:
    from helpers import make_recording
    from micmon.audio import AudioDirectory
    from micmon.dataset.generate import process_folder

    folder = make_recording(tmp_path / "rec", seconds=20.0, events=((8.0, 9.5),), rate=16000, fmt="wav")
    spec = FeatureSpec(sample_rate=16000, window_seconds=2.0, high_freq=7500.0, hop_seconds=0.5)
    progress: list[float] = []
    result = process_folder(
        AudioDirectory(folder),
        tmp_path / "dense.npz",
        spec,
        background_labels=["negative"],
        on_seconds=progress.append,
    )
    # progress counts the audio read once, however many windows overlap it or are left out
    assert sum(progress) == pytest.approx(20.0) and result.seconds == pytest.approx(20.0)
    dense = Dataset.load(tmp_path / "dense.npz")
    positive = dense.labels.index("positive")
    # windows start every 0.5 s: 0.0 .. 18.0 (37). The 1.5 s sound (8.0-9.5) is held at least half
    # by the windows starting 7.0-8.5 (labelled positive); the ones starting 6.5 and 9.0 hold a
    # third of it (left out: neither clean sound nor clean background); background windows keep
    # the 2 s grid.
    assert int(np.sum(dense.classes == positive)) == 4
    background_starts = [s for s in np.arange(0.0, 18.01, 0.5) if s + 2.0 <= 8.0 or s >= 9.5]
    kept = [s for s in background_starts if s % 2.0 == 0]
    assert int(np.sum(dense.classes != positive)) == len(kept)

    # background windows every second instead: twice as many, the sound's windows unchanged
    process_folder(
        AudioDirectory(folder), tmp_path / "bg1.npz", spec, background_labels=["negative"], background_hop=1.0
    )
    bg1 = Dataset.load(tmp_path / "bg1.npz")
    assert int(np.sum(bg1.classes == positive)) == 4
    assert int(np.sum(bg1.classes != positive)) == len([s for s in background_starts if s % 1.0 == 0])
    assert int(np.sum(bg1.classes != positive)) > len(kept)
    with pytest.raises(ParameterError, match=r"background_hop: must be > 0 seconds, got 0"):
        process_folder(
            AudioDirectory(folder), tmp_path / "x.npz", spec, background_labels=["negative"], background_hop=0
        )
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(ParameterError, match=r"background_hop: must be > 0 seconds"):  # checked with any hop
        process_folder(
            AudioDirectory(folder),
            tmp_path / "x.npz",
            FeatureSpec(sample_rate=16000, high_freq=7500.0),
            background_hop=-1,
        )

    # without background labels every overlapping window is kept, labelled by what covers most of it
    process_folder(AudioDirectory(folder), tmp_path / "all.npz", spec)
    assert len(Dataset.load(tmp_path / "all.npz")) == 37


def test_short_sound_hop_adds_offsets_around_short_sounds_only(tmp_path: Path) -> None:
    from helpers import make_recording
    from micmon.audio import AudioDirectory
    from micmon.dataset.generate import process_folder

    # a 1.5 s sound (shorter than the 2 s window) and a 3 s one (longer)
    folder = make_recording(
        tmp_path / "rec", seconds=24.0, events=((6.0, 7.5), (14.0, 17.0)), rate=16000, fmt="wav"
    )
    spec = FeatureSpec(sample_rate=16000, window_seconds=2.0, high_freq=7500.0, hop_seconds=0.5)
    plain, short = tmp_path / "plain.npz", tmp_path / "short.npz"
    process_folder(AudioDirectory(folder), plain, spec, background_labels=["negative"])
    process_folder(AudioDirectory(folder), short, spec, background_labels=["negative"], short_sound_hop=0.25)
    a, b = Dataset.load(plain), Dataset.load(short)
    positive = a.labels.index("positive")
    # every 0.5 s: the short sound is held at least half (0.75 s) by the windows starting 5.0-6.5
    # (4), the long one labels the windows starting 13.0-16.0 that it covers at least half (7);
    # every 0.25 s around the short sound: 4.75-6.75 (9), the long sound's windows unchanged
    assert int(np.sum(a.classes == positive)) == 4 + 7
    assert int(np.sum(b.classes == positive)) == 9 + 7
    # the background keeps its 2 s grid, and every window of the plain dataset is kept as it was
    assert int(np.sum(b.classes != positive)) == int(np.sum(a.classes != positive))
    rows = {row.tobytes() for row in b.samples}
    assert all(row.tobytes() in rows for row in a.samples)

    # a recording whose sounds all outlast the window gives the very same dataset
    long_only = make_recording(tmp_path / "long", seconds=20.0, events=((8.0, 11.0),), rate=16000, fmt="wav")
    process_folder(AudioDirectory(long_only), tmp_path / "l1.npz", spec, background_labels=["negative"])
    process_folder(
        AudioDirectory(long_only),
        tmp_path / "l2.npz",
        spec,
        background_labels=["negative"],
        short_sound_hop=0.25,
    )
    l1, l2 = Dataset.load(tmp_path / "l1.npz"), Dataset.load(tmp_path / "l2.npz")
    assert np.array_equal(l1.samples, l2.samples) and np.array_equal(l1.classes, l2.classes)

    with pytest.raises(ParameterError, match=r"short_sound_hop: must be > 0 seconds, got 0"):
        process_folder(
            AudioDirectory(folder),
            tmp_path / "x.npz",
            spec,
            background_labels=["negative"],
            short_sound_hop=0,
        )
    assert not (tmp_path / "x.npz").exists()


def test_with_training_replaces_the_training_windows_and_keeps_validation() -> None:
    samples = np.arange(20, dtype=np.float32).reshape(10, 2)
    classes = np.array([0, 1] * 5)
    mask = np.zeros(10, dtype=bool)
    mask[7:] = True
    data = Dataset(samples, classes, labels=["negative", "positive"], name="rec", validation_mask=mask)
    new = data.with_training(np.ones((4, 2), dtype=np.float32), np.array([1, 1, 1, 1]))
    assert len(new.train_samples) == 4 and new.train_classes.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(new.validation_samples, data.validation_samples)
    assert new.validation_classes.tolist() == data.validation_classes.tolist()
    assert new.labels == data.labels and new.name == "rec"
