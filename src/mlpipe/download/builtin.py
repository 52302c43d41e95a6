"""The built-in dataset: scikit-learn's digits, shipped in its wheel, so it works offline.

The digits are read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, the one its
``load_digits`` reads) without importing scikit-learn: that import takes over a second, most of a download job.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from mlpipe.formats.idx import write_idx
from mlpipe.io import atomic_path

DIGITS_MAX_VALUE = 16  # digits pixels are counts of set bits in 4x4 blocks: 0..16
DIGITS_SIDE = 8


def export_digits(raw_dir: Path) -> dict:
    """Write digits as gzipped IDX files (like MNIST) in ``raw_dir``; return the manifest."""
    images, labels = read_digits()
    images = np.rint(images * (255 / DIGITS_MAX_VALUE)).astype(np.uint8)  # (1797, 8, 8)
    files = {"images": "digits-images-idx3-ubyte.gz", "labels": "digits-labels-idx1-ubyte.gz"}
    for key, array in (("images", images), ("labels", labels)):
        with atomic_path(raw_dir / files[key]) as tmp:
            write_idx(tmp, array)
    return {
        "dataset": "digits",
        "format": "idx",
        "classes": [str(label) for label in range(10)],
        "splits": {"all": files},
        "source": "scikit-learn " + importlib.metadata.version("scikit-learn"),
    }


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images as (n, 8, 8) pixel counts 0..16, labels as uint8) from scikit-learn's digits.csv.gz."""
    rows = np.loadtxt(digits_file(), delimiter=",")  # per row: 64 pixels, then the label
    return rows[:, :-1].reshape(-1, DIGITS_SIDE, DIGITS_SIDE), rows[:, -1].astype(np.uint8)


def digits_file() -> Path:
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the built-in dataset needs scikit-learn installed (pip install scikit-learn)")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"scikit-learn's digits file is not at {path}")
    return path
