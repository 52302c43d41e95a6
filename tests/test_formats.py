"""The raw file formats: IDX (MNIST, and digits as exported) and CIFAR's pickled batches."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from mlpipe.formats.cifar import load_batch
from mlpipe.formats.idx import read_idx, read_idx_header, write_idx


def test_idx_round_trip_and_slices(tmp_path):
    array = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
    write_idx(tmp_path / "x.gz", array)
    assert read_idx_header(tmp_path / "x.gz") == (5, 3, 2)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)
    assert np.array_equal(read_idx(tmp_path / "x.gz", 1, 3), array[1:3])


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "x", np.zeros((10, 4, 4), np.uint8))
    data = (tmp_path / "x").read_bytes()
    (tmp_path / "y.gz").write_bytes(gzip.compress(data[:-20]))
    with pytest.raises(ValueError, match="truncated IDX file"):
        read_idx(tmp_path / "y.gz")


def test_cifar_batches_are_unpickled_without_running_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(ValueError, match=r"refusing to load builtins.print"):
        load_batch(path)
