"""The CIFAR-10/100 "python version" format: pickled dicts of uint8 rows and label lists.

Pickle can run code, so batches are read with an unpickler that only rebuilds NumPy arrays and
plain containers; anything else in the file is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def load_batch(path: Path) -> dict:
    """One pickled batch or meta file, with its keys as str."""
    try:
        with open(path, "rb") as handle:
            batch = _ArraysOnly(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"{path}: not a CIFAR batch ({error})") from None
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}


def batch_images(batch: dict) -> np.ndarray:
    """(N, 3072) rows, channel-major, to (N, 3, 32, 32) uint8."""
    return np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)


def class_names(meta_path: Path, key: str) -> list[str]:
    names = load_batch(meta_path)[key]
    return [name.decode() if isinstance(name, bytes) else str(name) for name in names]
