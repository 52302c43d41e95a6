"""The built-in dataset: scikit-learn's digits, shipped in its wheel, so it works offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlpipe.formats.idx import write_idx
from mlpipe.io import atomic_path

DIGITS_MAX_VALUE = 16  # digits pixels are counts of set bits in 4x4 blocks: 0..16


def export_digits(raw_dir: Path) -> dict:
    """Write digits as gzipped IDX files (like MNIST) in ``raw_dir``; return the manifest."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / DIGITS_MAX_VALUE)).astype(np.uint8)  # (1797, 8, 8)
    labels = digits.target.astype(np.uint8)
    files = {"images": "digits-images-idx3-ubyte.gz", "labels": "digits-labels-idx1-ubyte.gz"}
    for key, array in (("images", images), ("labels", labels)):
        with atomic_path(raw_dir / files[key]) as tmp:
            write_idx(tmp, array)
    return {
        "dataset": "digits",
        "format": "idx",
        "classes": [str(name) for name in digits.target_names],
        "splits": {"all": files},
        "source": "scikit-learn " + _sklearn_version(),
    }


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
