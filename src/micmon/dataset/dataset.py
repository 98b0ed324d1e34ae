"""Dataset: feature vectors and class indices, with a train/validation split and one label index."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from micmon._io import expand_path, is_hidden
from micmon.errors import DatasetError, ParameterError
from micmon.features import DEFAULT_HIGH_FREQ, DEFAULT_LOW_FREQ, FeatureSpec


def _check_split(validation_split: float) -> float:
    if not 0.0 <= validation_split < 1.0:
        raise ParameterError(
            f"validation_split: must be in [0, 1), got {validation_split!r}",
            parameter="validation_split",
            value=validation_split,
        )
    return float(validation_split)


class Dataset:
    """Feature vectors (`samples`) and class indices (`classes`) split into train and validation."""

    def __init__(
        self,
        samples: np.ndarray,
        classes: np.ndarray,
        validation_split: float = 0.0,
        low_freq: float = DEFAULT_LOW_FREQ,
        high_freq: float = DEFAULT_HIGH_FREQ,
        *,
        labels: Sequence[str] | None = None,
        spec: FeatureSpec | None = None,
        seed: int | None = 0,
        name: str | None = None,
        validation_mask: np.ndarray | None = None,
        source: str | None = None,
    ) -> None:
        self.samples = np.asarray(samples, dtype=np.float32)
        self.classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        if len(self.samples) != len(self.classes):
            raise DatasetError(
                f"{name or 'dataset'}: {len(self.samples)} samples but {len(self.classes)} classes"
            )
        self.validation_split = _check_split(validation_split)
        self.low_freq = float(low_freq)
        self.high_freq = float(high_freq)
        self.labels = list(labels) if labels is not None else None
        self.spec = spec
        self.name = name
        self.source = source  # the sample folder the windows came from, when known
        if self.labels is not None and len(self.classes) and self.classes.max() >= len(self.labels):
            raise DatasetError(
                f"{name or 'dataset'}: class index {int(self.classes.max())} has no label in {self.labels}"
            )
        if validation_mask is None:
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(self.samples))
            n_val = int(round(len(order) * self.validation_split))
            validation_mask = np.zeros(len(self.samples), dtype=bool)
            validation_mask[order[:n_val]] = True
        self._validation = np.asarray(validation_mask, dtype=bool)
        self.train_samples = self.samples[~self._validation]
        self.train_classes = self.classes[~self._validation]
        self.validation_samples = self.samples[self._validation]
        self.validation_classes = self.classes[self._validation]

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name or ''!s}, windows={len(self)}, labels={self.labels}, "
            f"train={len(self.train_samples)}, validation={len(self.validation_samples)})"
        )

    def class_counts(self) -> dict[str, int]:
        """Windows per label (by index when the label names are unknown)."""
        names = self.labels or [str(i) for i in range(int(self.classes.max(initial=-1)) + 1)]
        counts = np.bincount(self.classes, minlength=len(names))
        return {names[i]: int(c) for i, c in enumerate(counts)}

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        validation_split: float = 0.0,
        labels: Sequence[str] | None = None,
        *,
        seed: int | None = 0,
    ) -> Dataset:
        """Load one .npz dataset, re-indexing its classes onto `labels` when given."""
        path = expand_path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                fields = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such dataset file") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(f"{path}: not a micmon dataset (.npz): {exc}") from None
        for key in ("samples", "classes"):
            if key not in fields:
                raise DatasetError(f"{path}: not a micmon dataset, the {key!r} array is missing")
        spec = None
        if "spec" in fields:
            try:
                spec = FeatureSpec.from_json(str(fields["spec"]))
            except (ValueError, TypeError) as exc:
                raise DatasetError(f"{path}: bad feature spec: {exc}") from None
        cutoffs = fields.get("cutoff_frequencies")
        low, high = (
            (float(cutoffs[0]), float(cutoffs[1]))
            if cutoffs is not None and len(cutoffs) >= 2
            else (DEFAULT_LOW_FREQ, DEFAULT_HIGH_FREQ)
        )
        classes = fields["classes"].astype(np.int64).reshape(-1)
        file_labels = [str(x) for x in fields["labels"]] if "labels" in fields else None
        if labels is not None:
            labels = list(labels)
            if file_labels is not None:
                missing = [name for name in file_labels if name not in labels]
                if missing:
                    raise DatasetError(
                        f"{path}: label(s) {', '.join(map(repr, missing))} are not "
                        f"in the label list {labels}; add them or relabel"
                    )
                remap = np.array([labels.index(name) for name in file_labels], dtype=np.int64)
                classes = remap[classes] if len(classes) else classes
            elif len(classes) and classes.max() >= len(labels):
                raise DatasetError(
                    f"{path}: class index {int(classes.max())} does not fit the label list {labels}"
                )
        else:
            labels = file_labels
        source = str(fields["source"]) if "source" in fields else ""
        return cls(
            fields["samples"],
            classes,
            validation_split,
            low,
            high,
            labels=labels,
            spec=spec,
            seed=seed,
            name=path.stem,
            source=source or None,
        )

    @staticmethod
    def files(path: str | os.PathLike[str]) -> list[Path]:
        """Return the .npz files in folder `path`, sorted."""
        root = expand_path(path)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such datasets folder")
        # Hidden names are temporary files (an interrupted datagen) or editor leftovers.
        found = sorted(p for p in root.glob("*.npz") if not is_hidden(p) and p.is_file())
        if not found:
            raise DatasetError(f"{root}: no .npz datasets; generate them first (micmon datagen)")
        return found

    @classmethod
    def scan(
        cls,
        path: str | os.PathLike[str],
        validation_split: float = 0.0,
        labels: Sequence[str] | None = None,
        *,
        seed: int | None = 0,
    ) -> list[Dataset]:
        """Load every .npz in folder `path` with one label index shared by all files."""
        files = cls.files(path)
        if labels is None:
            names: set[str] = set()
            for file in files:
                names.update(_peek_labels(file) or [])
            labels = sorted(names) or None
        datasets = [cls.load(f, validation_split, labels, seed=seed) for f in files]
        with_spec = [d for d in datasets if d.spec is not None]
        for d in with_spec[1:]:
            reference = with_spec[0]
            assert d.spec is not None and reference.spec is not None
            if not d.spec.same_features(reference.spec):
                raise DatasetError(
                    f"{d.name}.npz: computed with different features than "
                    f"{reference.name}.npz ({_spec_diff(d.spec, reference.spec)}); "
                    "regenerate the datasets with the same settings"
                )
        return datasets

    def with_training(self, samples: np.ndarray, classes: np.ndarray) -> Dataset:
        """Return a dataset with these training windows and this one's validation windows."""
        mask = np.zeros(len(samples) + len(self.validation_samples), dtype=bool)
        mask[len(samples) :] = True
        return Dataset(
            np.concatenate([samples, self.validation_samples]),
            np.concatenate([classes, self.validation_classes]),
            spec=self.spec,
            labels=self.labels,
            low_freq=self.low_freq,
            high_freq=self.high_freq,
            name=self.name,
            validation_mask=mask,
        )

    @classmethod
    def combine(
        cls,
        datasets: Sequence[Dataset],
        validation_split: float = 0.0,
        *,
        by_recording: bool = False,
        seed: int | None = 0,
    ) -> Dataset:
        """Merge datasets into one; with `by_recording`, whole recordings go to validation."""
        if not datasets:
            raise DatasetError("no datasets to combine")
        validation_split = _check_split(validation_split)
        first = datasets[0]
        for d in datasets[1:]:
            if d.labels != first.labels:
                raise DatasetError(
                    f"{d.name}: labels {d.labels} differ from {first.name}'s "
                    f"{first.labels}; load them with Dataset.scan"
                )
        samples = np.concatenate([d.samples for d in datasets])
        classes = np.concatenate([d.classes for d in datasets])
        mask = None
        if by_recording:
            n_val = int(round(len(datasets) * validation_split))
            if validation_split > 0 and len(datasets) > 1:
                n_val = min(max(n_val, 1), len(datasets) - 1)
            chosen = set(choose_recordings([d.classes for d in datasets], n_val, seed=seed))
            mask = np.concatenate([np.full(len(d), i in chosen) for i, d in enumerate(datasets)])
        spec = next((d.spec for d in datasets if d.spec is not None), None)
        return cls(
            samples,
            classes,
            validation_split,
            first.low_freq,
            first.high_freq,
            labels=first.labels,
            spec=spec,
            seed=seed,
            name="combined",
            validation_mask=mask,
        )


def choose_recordings(
    classes: Sequence[np.ndarray | set[int] | None], count: int, *, seed: int | None = 0
) -> list[int]:
    """Return the indices of `count` recordings to set aside (validation or calibration).

    `classes[i]` holds recording i's classes (its windows' class indices, or their set; None:
    unknown). The choice follows one
    seeded random order (its first `count` when they already cover the classes), but covers every
    class that two or more recordings hold, rarest first, and never takes the last recording of a
    class from the side that stays. Set aside at random, room recordings can leave validation
    without one positive window (early stopping then rewards a network that hears nothing), or
    calibration without an event. With a class unknown, the plain random order.
    """
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(classes))]
    if any(c is None for c in classes):
        return order[:count]
    sets: list[set[int]] = [{int(k) for k in np.unique(list(c))} for c in classes if c is not None]
    holders = {c: sum(c in s for s in sets) for s in sets for c in s}
    chosen: list[int] = []

    def keeps_every_class(i: int) -> bool:
        kept = [sets[j] for j in range(len(sets)) if j != i and j not in chosen]
        return all(any(c in k for k in kept) for c in sets[i])

    covered: set[int] = set()
    for c in sorted(holders, key=lambda c: (holders[c], c)):  # rarest class first
        if c in covered or holders[c] < 2:
            continue
        for i in order:  # its first holder in the order
            if c in sets[i] and i not in chosen and len(chosen) < count and keeps_every_class(i):
                chosen.append(i)
                covered |= sets[i]
                break
    for safe in (True, False):  # then the rest of the order, safely if possible
        for i in order:
            if len(chosen) < count and i not in chosen and (not safe or keeps_every_class(i)):
                chosen.append(i)
    return sorted(chosen, key=order.index)


def _peek_labels(path: Path) -> list[str] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return [str(x) for x in data["labels"]] if "labels" in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a micmon dataset (.npz): {exc}") from None


def _spec_diff(a: FeatureSpec, b: FeatureSpec) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k] and k != "hop_seconds")
