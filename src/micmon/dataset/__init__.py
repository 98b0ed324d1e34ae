"""Datasets of feature vectors: DatasetWriter builds .npz files, Dataset loads and splits them."""

from micmon.dataset.dataset import Dataset
from micmon.dataset.writer import DatasetWriter

__all__ = ["Dataset", "DatasetWriter"]
