"""Read raw datasets described by a manifest, one chunk of decoded images at a time.

A reader offers ``shape`` and ``dtype`` of one sample, ``split_names()``, ``labels(split)`` (int64) and
``chunks(split, size)``, which yields ``(start, samples)`` with samples of shape (n, *shape), in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlpipe.formats.cifar import batch_images, load_batch
from mlpipe.formats.idx import read_idx, read_idx_header


class IdxReader:
    """MNIST-style IDX files: ``{split: {"images": file, "labels": file}}``."""

    dtype = np.dtype(np.uint8)

    def __init__(self, raw_dir: Path, manifest: dict):
        self.raw_dir = raw_dir
        self.splits = manifest["splits"]
        first = next(iter(self.splits.values()))
        height, width = read_idx_header(raw_dir / first["images"])[1:]
        self.shape = (1, height, width)

    def split_names(self) -> list[str]:
        return list(self.splits)

    def labels(self, split: str) -> np.ndarray:
        return read_idx(self.raw_dir / self.splits[split]["labels"]).astype(np.int64)

    def chunks(self, split: str, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        path = self.raw_dir / self.splits[split]["images"]
        count = read_idx_header(path)[0]
        for start in range(0, count, chunk_size):
            yield start, read_idx(path, start, start + chunk_size)[:, None]


class CifarReader:
    """CIFAR "python version" batches: ``{split: [batch file, ...]}``, labels under ``label_key``."""

    shape = (3, 32, 32)
    dtype = np.dtype(np.uint8)

    def __init__(self, raw_dir: Path, manifest: dict):
        self.raw_dir = raw_dir
        self.splits = manifest["splits"]
        self.label_key = manifest.get("label_key", "labels")

    def split_names(self) -> list[str]:
        return list(self.splits)

    def labels(self, split: str) -> np.ndarray:
        return np.concatenate(
            [np.asarray(self._batch(name)[self.label_key], dtype=np.int64) for name in self.splits[split]]
        )

    def chunks(self, split: str, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for name in self.splits[split]:
            images = batch_images(self._batch(name))  # one batch file (10,000 images) decoded at a time
            for offset in range(0, len(images), chunk_size):
                yield start + offset, images[offset : offset + chunk_size]
            start += len(images)

    def _batch(self, name: str) -> dict:
        path = self.raw_dir / name
        if not path.is_file():
            raise ValueError(f"{self.raw_dir}: manifest names {name}, which is missing")
        return load_batch(path)


class ArrayReader:
    """Samples already decoded into one (memory-mapped) array, with per-split indices into it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: dict[str, np.ndarray]):
        self.images, self.all_labels, self.indices = images, labels, indices
        self.shape, self.dtype = tuple(images.shape[1:]), images.dtype

    def split_names(self) -> list[str]:
        return list(self.indices)

    def labels(self, split: str) -> np.ndarray:
        return self.all_labels[self.indices[split]].astype(np.int64)

    def chunks(self, split: str, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        index = self.indices[split]
        for start in range(0, len(index), chunk_size):
            yield start, np.asarray(self.images[index[start : start + chunk_size]])


READERS = {"idx": IdxReader, "cifar": CifarReader}


def open_reader(raw_dir: Path, manifest: dict):
    try:
        reader_class = READERS[manifest["format"]]
    except KeyError:
        raise ValueError(f"{raw_dir}/manifest.json: unknown raw format {manifest.get('format')!r}") from None
    return reader_class(raw_dir, manifest)
