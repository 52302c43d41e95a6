"""Decode an indexed image folder into one uint8 array, chunk by chunk, in threads.

Each image is converted to the configured channels (L or RGB) and resized to the configured size.
A file Pillow cannot read is an error naming it, or, with ``skip_corrupt``, left out and counted.
The decoded array is memory-mapped on disk, so folders larger than RAM work.
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mlpipe.preprocess.readers import ArrayReader

log = logging.getLogger(__name__)

MODES = {1: "L", 3: "RGB"}


class CorruptImageError(ValueError):
    """An image file that cannot be decoded."""


def decode_image(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """(C, H, W) uint8 for one image file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert(MODES[channels]).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"{path}: cannot decode image ({error})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def decode_image_folder(
    raw_dir: Path, manifest: dict, settings: dict, decoded_path: Path, *, threads: int = 2, chunk_size: int = 1024
) -> tuple[ArrayReader, list[str]]:
    """Decode every listed image into ``decoded_path``; return a reader over it and the skipped files."""
    root = Path(manifest["root"])
    with open(raw_dir / next(iter(manifest["splits"].values()))) as handle:
        rows = list(csv.DictReader(handle))
    size, channels = tuple(settings["size"]), settings["channels"]
    images = np.lib.format.open_memmap(decoded_path, mode="w+", dtype=np.uint8, shape=(len(rows), channels, *size))
    valid = np.ones(len(rows), dtype=bool)
    skipped = []

    def decode(index: int) -> None:
        try:
            images[index] = decode_image(root / rows[index]["path"], size, channels)
        except CorruptImageError as error:
            if not settings["skip_corrupt"]:
                raise
            valid[index] = False
            skipped.append(rows[index]["path"])
            log.warning("skipping %s (dataset.image_folder.skip_corrupt)", error)

    with ThreadPoolExecutor(max_workers=threads) as pool:  # Pillow decodes without holding the GIL
        for start in range(0, len(rows), chunk_size):
            list(pool.map(decode, range(start, min(start + chunk_size, len(rows)))))
    images.flush()
    labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    splits = np.array([row["split"] for row in rows])
    indices = {split: np.flatnonzero((splits == split) & valid) for split in manifest["splits"]}
    return ArrayReader(images, labels, indices), sorted(skipped)
