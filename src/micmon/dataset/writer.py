"""DatasetWriter: features and labels of audio windows, written atomically to one .npz file."""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import numpy as np

from micmon._io import atomic_path, expand_path
from micmon.audio.segment import AudioSegment
from micmon.errors import DatasetError, ParameterError
from micmon.features import (
    DEFAULT_HIGH_FREQ,
    DEFAULT_LOW_FREQ,
    FeatureSpec,
    Scale,
    WindowFeatures,
    compute_batch,
)

log = logging.getLogger(__name__)

#: Windows whose features are computed together (vectorised) before being stored.
BATCH_WINDOWS = 64
#: .npz members stored without compression: deflate shrinks log-mel floats by only ~17 % (45
#: instead of 54 MB an hour of audio at 16 kHz) and costs 1.4 s an hour even at level 1 (2.4 s at
#: numpy's default 6), all of it after the audio is read: a third of datagen's time on its own.
NPZ_STORED = ("samples",)


class DatasetWriter:
    """Collects labelled windows (`writer += segment`) and writes them as one .npz file on close."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        low_freq: float | None = None,
        high_freq: float | None = None,
        bins: int = 100,
        *,
        scale: Scale = "log",
        spec: FeatureSpec | None = None,
        overwrite: bool = False,
        source: str | None = None,
        write_empty: bool = True,
        **spec_options: Any,
    ) -> None:
        target = expand_path(path)
        if target.suffix != ".npz":
            target = target.with_name(target.name + ".npz")
        if target.exists() and not overwrite:
            raise DatasetError(f"{target}: already exists; pass overwrite=True (--force) to replace it")
        self.path = str(target)
        self.spec = spec
        self._options = dict(low_freq=low_freq, high_freq=high_freq, bins=bins, scale=scale, **spec_options)
        self.source = source
        self._spool: _Spool | None = None  # the features computed so far, on disk
        self._pending: list[np.ndarray] = []
        self._pending_starts: list[float] = []
        self._frames: WindowFeatures | None = None
        self._names: list[str] = []
        self._starts: list[float] = []
        self.skipped = 0
        self._closed = False
        #: With write_empty=False, a writer that collected no labelled window writes no file.
        self.write_empty = write_empty
        #: Whether close() wrote the file.
        self.written = False

    # -- collecting ---------------------------------------------------------------------------
    def _spec_for(self, sample: AudioSegment) -> FeatureSpec:
        if self.spec is None:
            self.spec = sample.feature_spec(**self._options)
        spec = self.spec
        if (sample.sample_rate, sample.channels) != (spec.sample_rate, spec.channels) or len(
            sample.audio
        ) != spec.window_samples * spec.channels:
            raise ParameterError(
                f"{self.path}: window at {sample.start:.3f} s is {sample.duration:g} s at "
                f"{sample.sample_rate} Hz x {sample.channels} channels, but the dataset holds "
                f"{spec.window_seconds:g} s at {spec.sample_rate} Hz x {spec.channels}",
                parameter="sample",
            )
        return spec

    def add(self, sample: AudioSegment) -> None:
        """Add one labelled window; unlabelled windows are counted and skipped."""
        if self._closed:
            raise DatasetError(f"{self.path}: writer already closed")
        self._spec_for(sample)
        if sample.label is None:
            self.skipped += 1
            return
        self._pending.append(sample.audio)
        self._pending_starts.append(sample.start)
        self._names.append(sample.label)
        self._starts.append(sample.start)
        if len(self._pending) >= BATCH_WINDOWS:
            self._flush()

    def __iadd__(self, sample: AudioSegment) -> DatasetWriter:
        self.add(sample)
        return self

    def _flush(self) -> None:
        if self._pending:
            spec = self.spec
            assert spec is not None
            windows = np.stack(self._pending)
            if spec.hop_seconds is not None and spec.hop_seconds < spec.window_seconds:
                # Overlapping training windows share their log-mel frames, as in monitor.
                if self._frames is None:
                    self._frames = WindowFeatures(spec)
                features = self._frames.at_times(windows, self._pending_starts)
            else:
                features = compute_batch(windows, spec)
            if self._spool is None:
                folder = os.path.dirname(self.path)
                self._spool = _Spool(folder if os.path.isdir(folder) else None)
            self._spool.append(features)
            self._pending.clear()
            self._pending_starts.clear()

    def __len__(self) -> int:
        return len(self._names)

    @property
    def label_counts(self) -> dict[str, int]:
        """Windows collected per label."""
        names, counts = np.unique(np.array(self._names, dtype=str), return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    # -- writing ------------------------------------------------------------------------------
    def close(self) -> None:
        """Write the .npz file atomically (an empty dataset if no window had a label)."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        if not self._names and not self.write_empty:
            log.info("%s: no labelled window; not written", self.path)
            return
        # Without a single window the audio format is unknown: store no spec rather than invent
        # one, so the empty file never conflicts with its siblings in Dataset.scan.
        spec = self.spec
        low = spec.low_freq if spec else self._options["low_freq"] or DEFAULT_LOW_FREQ
        high = spec.high_freq if spec else self._options["high_freq"] or DEFAULT_HIGH_FREQ
        width = spec.shape if spec else (int(self._options["bins"]),)
        samples: Any = self._spool if self._spool is not None else np.zeros((0, *width), dtype=np.float32)
        labels = sorted(set(self._names))
        index = {name: i for i, name in enumerate(labels)}
        classes = np.array([index[n] for n in self._names], dtype=np.int64)
        if self.skipped:
            log.info("%s: skipped %d unlabelled windows", self.path, self.skipped)
        arrays: dict[str, Any] = dict(
            samples=samples,
            classes=classes,
            cutoff_frequencies=np.array([low, high]),
            labels=np.array(labels, dtype=str),
            starts=np.array(self._starts, dtype=np.float64),
            source=np.array(self.source or ""),
        )
        if spec is not None:
            arrays["spec"] = np.array(spec.to_json())
        try:
            with atomic_path(self.path, suffix=".npz") as tmp:
                _write_npz(tmp, arrays)
        finally:
            self._drop_spool()
        self.written = True

    def _drop_spool(self) -> None:
        if self._spool is not None:
            self._spool.file.close()
            self._spool = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # never leave a half-written dataset behind
            self._drop_spool()


class _Spool:
    """Feature batches in an unnamed temporary file until the .npz is written: memory stays flat
    however many windows a dataset holds (an hour at a quarter-window hop: 230 MB of log-mel)."""

    def __init__(self, folder: str | None) -> None:
        self.file = tempfile.TemporaryFile(dir=folder)  # gone when closed, or if the process dies
        self.rows = 0
        self.row_shape: tuple[int, ...] = ()

    def append(self, part: np.ndarray) -> None:
        part = np.ascontiguousarray(part, dtype=np.float32)
        self.rows += len(part)
        self.row_shape = part.shape[1:]
        self.file.write(part.tobytes())

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(size):
            yield chunk


def _write_npz(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write `arrays` as an .npz (as `np.load` reads it; NPZ_STORED members not compressed).

    A `_Spool` is copied from its file a piece at a time: never whole in memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            if isinstance(value, _Spool):
                dtype, shape, body = np.dtype(np.float32), (value.rows, *value.row_shape), value.chunks()
            else:
                array = np.asarray(value)  # tobytes() is C order; 0-d arrays stay 0-d
                dtype, shape, body = array.dtype, array.shape, iter([array.tobytes()])
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name in NPZ_STORED else zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                for chunk in body:
                    fh.write(chunk)
