"""Read raw datasets described by a manifest, one chunk of decoded images at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlpipe.formats.idx import read_idx, read_idx_header


class IdxReader:
    """MNIST-style IDX files: ``{split: {"images": file, "labels": file}}``."""

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


READERS = {"idx": IdxReader}


def open_reader(raw_dir: Path, manifest: dict):
    try:
        reader_class = READERS[manifest["format"]]
    except KeyError:
        raise ValueError(f"{raw_dir}/manifest.json: unknown raw format {manifest.get('format')!r}") from None
    return reader_class(raw_dir, manifest)
