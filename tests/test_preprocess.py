"""Preprocess: the seeded stratified split, exact statistics, atomic outputs, the IDX format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mlpipe.formats.idx import read_idx, read_idx_header, write_idx
from mlpipe.io import atomic_path, write_json
from mlpipe.layout import processed_files
from mlpipe.preprocess.split import TEST, VAL, assign_source_splits, stratified_assignment
from mlpipe.preprocess.stage import preprocess_dataset

SPLIT_SETTINGS = {"val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


def test_stratified_assignment_is_seeded_and_keeps_class_shares():
    labels = np.repeat(np.arange(4), [100, 60, 40, 20])
    first = stratified_assignment(labels, {TEST: 0.25, VAL: 0.1}, seed=7)
    assert np.array_equal(first, stratified_assignment(labels, {TEST: 0.25, VAL: 0.1}, seed=7))
    assert not np.array_equal(first, stratified_assignment(labels, {TEST: 0.25, VAL: 0.1}, seed=8))
    for label, count in enumerate([100, 60, 40, 20]):
        codes = first[labels == label]
        assert (codes == TEST).sum() == round(count * 0.25)
        assert (codes == VAL).sum() == round(count * 0.1)


def test_an_official_test_split_is_kept_and_validation_comes_from_train():
    labels = {"train": np.arange(100) % 10, "test": np.arange(30) % 10}
    assignment = assign_source_splits(labels, val_fraction=0.2, test_fraction=0.5, seed=0)
    assert (assignment["test"] == TEST).all()
    assert (assignment["train"] == VAL).sum() == 20 and not (assignment["train"] == TEST).any()


def write_raw_dataset(raw_dir, images, labels, classes):
    raw_dir.mkdir(parents=True)
    write_idx(raw_dir / "images.gz", images)
    write_idx(raw_dir / "labels.gz", labels)
    write_json(
        raw_dir / "manifest.json",
        {
            "dataset": "toy",
            "format": "idx",
            "classes": classes,
            "splits": {"all": {"images": "images.gz", "labels": "labels.gz"}},
        },
    )


def test_preprocess_writes_every_example_once_with_train_only_statistics(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(300, 5, 6), dtype=np.uint8)
    labels = (np.arange(300) % 3).astype(np.uint8)
    write_raw_dataset(tmp_path / "raw", images, labels, ["a", "b", "c"])

    split = {"val_fraction": 0.2, "test_fraction": 0.1, "split_seed": 1}
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "out", split, chunk_size=7)

    arrays = {
        split: (np.load(tmp_path / "out" / f"{split}_images.npy"), np.load(tmp_path / "out" / f"{split}_labels.npy"))
        for split in ("train", "val", "test")
    }
    assert meta["counts"] == {split: len(arrays[split][1]) for split in arrays} == {"train": 216, "val": 54, "test": 30}
    assert meta["shape"] == [1, 5, 6] and meta["classes"] == ["a", "b", "c"]
    for split_images, split_labels in arrays.values():
        assert split_images.dtype == np.uint8 and split_images.shape[1:] == (1, 5, 6) and split_labels.dtype == np.int64
    # Every source image lands in exactly one split, with its own label.
    by_bytes = {image.tobytes(): label for image, label in zip(images, labels)}
    written = [
        (image[0].tobytes(), label)
        for split_images, split_labels in arrays.values()
        for image, label in zip(split_images, split_labels)
    ]
    assert len(written) == 300 and all(by_bytes[key] == label for key, label in written)
    train = arrays["train"][0] / 255
    assert meta["mean"][0] == pytest.approx(train.mean(), abs=1e-12)
    assert meta["std"][0] == pytest.approx(train.std(), abs=1e-12)
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in processed_files(tmp_path / "out")
    )


def test_labels_outside_the_class_list_are_refused(tmp_path):
    write_raw_dataset(
        tmp_path / "raw", np.zeros((4, 2, 2), np.uint8), np.array([0, 1, 2, 5], np.uint8), ["a", "b", "c"]
    )
    with pytest.raises(ValueError, match="labels of split 'all' fall outside 0..2"):
        preprocess_dataset(
            tmp_path / "raw", tmp_path / "out", {"val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}
        )


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


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_the_old_file_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_entry_points_end_with_one_line_for_mlpipe_errors_and_a_traceback_for_surprises(tmp_path):
    import subprocess
    import sys

    from conftest import REPO, job_env

    def preprocess(raw_dir: Path) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            str(REPO / "scripts" / "preprocess.py"),
            "--dataset",
            json.dumps(SPLIT_SETTINGS),
            "--raw-dir",
            str(raw_dir),
            "--processed-dir",
            str(tmp_path / "out"),
        ]
        return subprocess.run(command, env=job_env(), capture_output=True, text=True)

    # Raised on purpose by mlpipe: one line.
    (tmp_path / "odd").mkdir()
    write_json(tmp_path / "odd" / "manifest.json", {"dataset": "x", "format": "hdf5", "classes": ["a"], "splits": {}})
    ours = preprocess(tmp_path / "odd")
    assert ours.returncode == 1 and "Traceback" not in ours.stderr
    assert (
        ours.stderr.strip().splitlines()[-1]
        == f"error: ValueError: {tmp_path / 'odd'}/manifest.json: unknown raw format 'hdf5'"
    )
    # Raised inside the standard library: the traceback comes first, the same kind of line last.
    surprise = preprocess(tmp_path / "missing")
    assert surprise.returncode == 1 and "Traceback" in surprise.stderr
    assert surprise.stderr.strip().splitlines()[-1].startswith("error: FileNotFoundError: ")
