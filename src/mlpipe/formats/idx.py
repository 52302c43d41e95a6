"""The IDX format of MNIST (gzipped or not): a magic number, dimensions, then raw data.

The built-in digits dataset is written in this format too, so preprocess reads it with
the same code path as MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

UBYTE_TYPE_CODE = 0x08


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped when ``path`` ends in .gz)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writer takes uint8 arrays, got {array.dtype}")
    with _open(Path(path), "wb") as handle:
        handle.write(struct.pack(">HBB", 0, UBYTE_TYPE_CODE, array.ndim))
        handle.write(struct.pack(f">{array.ndim}I", *array.shape))
        handle.write(np.ascontiguousarray(array).tobytes())


def read_idx_header(path: str | os.PathLike) -> tuple[int, ...]:
    """Return the shape stored in an IDX file without reading its data."""
    with _open(Path(path), "rb") as handle:
        return _read_shape(handle, path)


def read_idx(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Read items ``start:stop`` (along the first axis) of an IDX file as uint8."""
    with _open(Path(path), "rb") as handle:
        shape = _read_shape(handle, path)
        stop = shape[0] if stop is None else min(stop, shape[0])
        item_size = int(np.prod(shape[1:], dtype=np.int64))
        header_size = 4 + 4 * len(shape)
        handle.seek(header_size + start * item_size)
        count = max(stop - start, 0)
        data = handle.read(count * item_size)
    if len(data) != count * item_size:
        raise ValueError(f"{path}: truncated IDX file (expected {count * item_size} bytes of data, got {len(data)})")
    return np.frombuffer(data, dtype=np.uint8).reshape(count, *shape[1:])


def _read_shape(handle, path) -> tuple[int, ...]:
    header = handle.read(4)
    if len(header) != 4:
        raise ValueError(f"{path}: not an IDX file (too short)")
    zero, type_code, ndim = struct.unpack(">HBB", header)
    if zero != 0 or type_code != UBYTE_TYPE_CODE or ndim == 0:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    return struct.unpack(f">{ndim}I", handle.read(4 * ndim))
