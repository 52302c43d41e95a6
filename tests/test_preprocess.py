"""Preprocess: the seeded stratified split, exact statistics, atomic outputs, image folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dataset_files import cifar_archive, image_folder_settings, make_image_folder, md5, write_catalog
from mlpipe.download.stage import download_dataset
from mlpipe.formats.idx import write_idx
from mlpipe.io import write_json
from mlpipe.layout import processed_files
from mlpipe.preprocess.image_folder import CorruptImageError
from mlpipe.preprocess.split import TEST, VAL, SplitError, assign_source_splits, stratified_assignment
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


def test_cifar100_uses_fine_labels_and_its_meta_file(tmp_path):
    archive = cifar_archive(per_batch=60, test=100, fine=True)  # 3 training images per class: 1 to validation
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"cifar100": {"files": [{"filename": "cifar-100-python.tar.gz", "md5": md5(archive)}]}},
    )
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "cifar-100-python.tar.gz").write_bytes(archive)
    download_dataset(
        {"name": "cifar100", "local_dir": str(tmp_path / "lab"), "catalog": str(catalog)}, tmp_path / "raw"
    )
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", SPLIT_SETTINGS)
    assert meta["num_classes"] == 100 and meta["counts"]["test"] == 100
    assert np.load(tmp_path / "processed" / "test_labels.npy").max() == 99


def test_an_image_folder_becomes_arrays_of_the_configured_size(tmp_path):
    settings = image_folder_settings(make_image_folder(tmp_path / "images"))
    download_dataset(settings, tmp_path / "raw")
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings, threads=2)
    assert meta["classes"] == ["birds", "cats", "dogs"] and meta["shape"] == [3, 16, 12]
    assert sum(meta["counts"].values()) == 30
    assert not list((tmp_path / "processed").glob(".decoded*"))


def test_a_corrupt_image_is_an_error_naming_the_file(tmp_path):
    settings = image_folder_settings(make_image_folder(tmp_path / "images", corrupt=True))
    download_dataset(settings, tmp_path / "raw")
    with pytest.raises(CorruptImageError, match=r"cats/broken.png: cannot decode image"):
        preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    assert not (tmp_path / "processed" / "meta.json").exists()
    assert not list((tmp_path / "processed").glob("*.npy")) and not list((tmp_path / "processed").glob(".*"))


def test_corrupt_images_can_be_skipped_and_counted(tmp_path):
    settings = image_folder_settings(
        make_image_folder(tmp_path / "images", corrupt=True), skip_corrupt=True, channels=1
    )
    download_dataset(settings, tmp_path / "raw")
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    assert meta["skipped"] == {"count": 1, "files": ["cats/broken.png"]}
    assert sum(meta["counts"].values()) == 30 and meta["shape"] == [1, 16, 12]


def test_explicit_split_folders_are_kept(tmp_path):
    for split in ("train", "val", "test"):
        make_image_folder(tmp_path / "images" / split)
    settings = image_folder_settings(tmp_path / "images", split_folders=True)
    download_dataset(settings, tmp_path / "raw")
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    assert meta["counts"] == {"train": 30, "val": 30, "test": 30}


def test_fractions_that_leave_a_class_without_training_images_are_refused_naming_the_keys(tmp_path):
    download_dataset({"name": "digits"}, tmp_path / "raw")
    split = {"val_fraction": 0.95, "test_fraction": 0.95, "split_seed": 0}
    with pytest.raises(SplitError) as error:
        preprocess_dataset(tmp_path / "raw", tmp_path / "processed", split)
    message = str(error.value)
    assert message.startswith(
        "dataset.val_fraction 0.95 and dataset.test_fraction 0.95 leave 7 of 10 classes without training images ("
    )
    assert message.endswith("); lower them so that every class keeps some")
    assert not (tmp_path / "processed").exists() or not list((tmp_path / "processed").iterdir())


def test_a_validation_fraction_that_leaves_the_validation_split_empty_is_refused(tmp_path):
    write_raw_dataset(tmp_path / "raw", np.zeros((60, 2, 2), np.uint8), np.arange(60, dtype=np.uint8) % 3, list("abc"))
    with pytest.raises(SplitError, match=r"^dataset.val_fraction 0.01 leaves the validation split empty; raise it$"):
        preprocess_dataset(
            tmp_path / "raw", tmp_path / "out", {"val_fraction": 0.01, "test_fraction": 0.2, "split_seed": 0}
        )
    assert not (tmp_path / "out" / "meta.json").exists()
