"""Preprocess: the seeded stratified split, exact statistics, atomic outputs, image folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, job_env
from dataset_files import cifar_archive, image_folder_settings, make_image_folder, md5, write_catalog
from mlpipe.download.stage import download_dataset
from mlpipe.formats.idx import write_idx
from mlpipe.io import write_json
from mlpipe.layout import processed_files
from mlpipe.preprocess.fractions import check_fractions, split_basis
from mlpipe.preprocess.image_folder import CorruptImageError
from mlpipe.preprocess.split import (
    TEST,
    VAL,
    SplitError,
    assign_source_splits,
    planned_split_counts,
    split_counts,
    stratified_assignment,
)
from mlpipe.preprocess.stage import preprocess_dataset
from mlpipe.preprocess.user_dataset import DatasetError
from mlpipe.user_code import UserCodeError

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


def test_a_subset_keeps_as_many_samples_of_each_class_and_is_a_part_of_the_full_split(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(900, 4, 4), dtype=np.uint8)
    labels = (np.arange(900) % 3).astype(np.uint8)
    write_raw_dataset(tmp_path / "raw", images, labels, ["a", "b", "c"])
    split = {"val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 4}
    preprocess_dataset(tmp_path / "raw", tmp_path / "full", split)
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "small", split | {"subset": 30})
    assert meta["counts"] == {"train": 30, "val": 15, "test": 15} and meta["subset"] == 30
    for name in ("train", "val", "test"):
        kept, whole = (np.load(tmp_path / folder / f"{name}_images.npy") for folder in ("small", "full"))
        kept_labels = np.load(tmp_path / "small" / f"{name}_labels.npy")
        assert np.bincount(kept_labels).tolist() == [len(kept_labels) // 3] * 3  # as many of each class
        assert {image.tobytes() for image in kept} <= {image.tobytes() for image in whole}  # same split, fewer
    again = preprocess_dataset(tmp_path / "raw", tmp_path / "again", split | {"subset": 30})
    assert again["checksums"] == meta["checksums"]  # the same samples every time


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


@pytest.mark.parametrize("sources", [("all",), ("train", "test")])
def test_the_split_of_each_class_follows_from_its_counts_alone(sources):
    # What lets the workflow check new fractions when it is parsed, from the counts meta.json recorded.
    rng = np.random.default_rng(0)
    labels = {source: rng.integers(0, 6, size=int(rng.integers(5, 400))) for source in sources}
    source_counts = {source: np.bincount(values, minlength=6).tolist() for source, values in labels.items()}
    for val_fraction, test_fraction in [(0.15, 0.15), (0.5, 0.3), (0.95, 0.95), (0.01, 0.6), (0.33, 0.0)]:
        assignment = assign_source_splits(labels, val_fraction, test_fraction, seed=3)
        drawn = split_counts(labels, assignment, 6)
        assert (planned_split_counts(source_counts, val_fraction, test_fraction) == drawn).all()


def test_meta_json_records_each_raw_splits_class_counts_and_what_they_were_counted_on(tmp_path):
    download_dataset({"name": "digits"}, tmp_path / "raw")
    settings = {"name": "digits", "val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0}
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    assert sum(meta["source_counts"]["all"]) == 1797 and len(meta["source_counts"]["all"]) == 10
    basis = meta["split"]["basis"]
    assert basis == split_basis(tmp_path / "raw", settings | {"val_fraction": 0.3, "split_seed": 4})
    assert basis != split_basis(tmp_path / "raw", settings | {"image_folder": {"channels": 1}})
    check_fractions(tmp_path / "processed", basis, 0.3, 0.2)
    with pytest.raises(SplitError, match=r"^dataset.val_fraction 0.95 and dataset.test_fraction 0.95 leave 7 of"):
        check_fractions(tmp_path / "processed", basis, 0.95, 0.95)
    check_fractions(tmp_path / "processed", "another basis", 0.95, 0.95)  # other data: preprocess will check


def test_a_validation_fraction_that_leaves_the_validation_split_empty_is_refused(tmp_path):
    write_raw_dataset(tmp_path / "raw", np.zeros((60, 2, 2), np.uint8), np.arange(60, dtype=np.uint8) % 3, list("abc"))
    with pytest.raises(SplitError, match=r"^dataset.val_fraction 0.01 leaves the validation split empty; raise it$"):
        preprocess_dataset(
            tmp_path / "raw", tmp_path / "out", {"val_fraction": 0.01, "test_fraction": 0.2, "split_seed": 0}
        )
    assert not (tmp_path / "out" / "meta.json").exists()


SIGNALS = """
import numpy as np
import torch
from torch.utils.data import Dataset


class Signals(Dataset):
    classes = ["low", "mid", "high"]

    def __init__(self, split="train", count=90, transform=None):
        rng = np.random.default_rng(0 if split == "train" else 1)
        self.labels = np.arange(count if split == "train" else count // 3) % 3
        self.data = 100 + rng.normal(size=(len(self.labels), 2, 16)) + self.labels[:, None, None]  # float64
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return torch.from_numpy(self.data[idx]), torch.tensor(self.labels[idx])
"""
PICTURES = """
import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class Pictures(Dataset):
    def __init__(self, count):
        self.images = np.random.default_rng(0).integers(0, 256, (count, 8, 6, 3), dtype=np.uint8)
        self.labels = [index % 5 for index in range(count)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return Image.fromarray(self.images[idx]), self.labels[idx]
"""
FEATURES = """
import numpy as np
from torch.utils.data import Dataset


class Features(Dataset):
    def __init__(self, rows, train=True):
        self.rows = rows if train else rows // 2
        self.offset = 0 if train else 10_000

    def __len__(self):
        return self.rows

    def __getitem__(self, idx):
        value = self.offset + idx
        return np.array([value, value / 2, 1.5, -value, 3]), np.int64(value % 2)
"""


def write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def read_custom(settings_class: str, args: dict, out: Path, threads: int = 2, **split) -> dict:
    """The custom dataset through the download and preprocess stages, as the workflow runs them."""
    raw = out.parent / f"{out.name}-raw"
    download_dataset({"name": "custom"}, raw)
    return preprocess_dataset(
        raw, out, SPLIT_SETTINGS | split | {"custom": {"class": settings_class, "args": args}}, threads=threads
    )


def load_arrays(processed: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        split: (np.load(processed / f"{split}_images.npy"), np.load(processed / f"{split}_labels.npy"))
        for split in ("train", "val", "test")
    }


def test_a_dataset_with_a_split_argument_keeps_its_test_split_and_its_float_signals(lab_project):
    write_file(lab_project / "src" / "data" / "dataset.py", SIGNALS)
    meta = read_custom("src/data/dataset.py:Signals", {"count": 90}, lab_project / "processed")

    arrays = load_arrays(lab_project / "processed")
    assert meta["counts"] == {"train": 72, "val": 18, "test": 30}  # val carved from train, the test split as given
    assert meta["shape"] == [2, 16] and meta["dtype"] == "float32" and meta["classes"] == ["low", "mid", "high"]
    assert meta["source"] == {"class": "src/data/dataset.py:Signals", "args": {"count": 90}}
    for images, labels in arrays.values():
        assert images.dtype == np.float32 and images.shape[1:] == (2, 16) and labels.dtype == np.int64
    test_images, test_labels = arrays["test"]
    expected = 100 + np.random.default_rng(1).normal(size=(30, 2, 16)) + (np.arange(30) % 3)[:, None, None]
    assert np.array_equal(test_images, expected.astype(np.float32)) and test_labels.tolist() == [0, 1, 2] * 10
    train = arrays["train"][0].astype(np.float64)  # per channel, over the training split only, in the data's units
    assert meta["mean"] == pytest.approx(train.mean(axis=(0, 2)).tolist(), abs=1e-6)
    assert meta["std"] == pytest.approx(train.std(axis=(0, 2)).tolist(), abs=1e-6)
    assert sorted(p.name for p in (lab_project / "processed").iterdir()) == sorted(
        p.name for p in processed_files(lab_project / "processed")
    )


def test_a_dataset_of_pil_images_without_a_split_argument_is_split_by_mlpipe_and_stays_uint8(lab_project):
    write_file(lab_project / "pictures.py", PICTURES)
    meta = read_custom("pictures.py:Pictures", {"count": 100}, lab_project / "processed")

    assert meta["shape"] == [3, 8, 6] and meta["dtype"] == "uint8" and meta["classes"] == ["0", "1", "2", "3", "4"]
    assert meta["counts"] == {"train": 65, "val": 15, "test": 20}  # stratified: 4 and 3 of each class's 20
    source = np.random.default_rng(0).integers(0, 256, (100, 8, 6, 3), dtype=np.uint8)
    by_bytes = {image.transpose(2, 0, 1).tobytes(): index % 5 for index, image in enumerate(source)}
    written = [
        (image.tobytes(), label)
        for images, labels in load_arrays(lab_project / "processed").values()
        for image, label in zip(images, labels)
    ]
    assert len(written) == 100 and all(by_bytes[key] == label for key, label in written)
    for _, labels in load_arrays(lab_project / "processed").values():
        assert np.bincount(labels, minlength=5).tolist() == [len(labels) // 5] * 5


def test_a_dataset_with_a_train_flag_reads_the_same_with_workers_or_without(lab_project):
    write_file(lab_project / "features.py", FEATURES)
    with_workers = read_custom("features.py:Features", {"rows": 1000}, lab_project / "two", threads=2)
    in_process = read_custom("features.py:Features", {"rows": 1000}, lab_project / "one", threads=1)

    assert with_workers["counts"] == {"train": 800, "val": 200, "test": 500} and with_workers["shape"] == [5]
    assert with_workers["checksums"] == in_process["checksums"]
    test_images, test_labels = load_arrays(lab_project / "two")["test"]
    assert test_images[7].tolist() == [10_007, 5003.5, 1.5, -10_007, 3] and test_labels[7] == 1


FAULTY = """
import numpy as np
from torch.utils.data import Dataset


class Faulty(Dataset):
    def __init__(self, fault):
        self.fault = fault
        if fault == "beyond classes":
            self.classes = ["a", "b"]

    def __len__(self):
        return 0 if self.fault == "empty" else 600

    def __getitem__(self, idx):
        sample, label = np.zeros((2, 4), np.uint8 if self.fault == "dtype" else np.float32), idx % 2
        if idx == 517:  # in a chunk a worker reads
            if self.fault == "shape":
                sample = np.zeros((2, 5), np.float32)
            elif self.fault == "float label":
                label = 0.5
            elif self.fault == "text label":
                label = "cat"
            elif self.fault == "negative":
                label = -1
            elif self.fault == "beyond classes":
                label = 2
            elif self.fault == "nan":
                sample[1, 2] = np.nan
            elif self.fault == "dtype":
                sample = sample.astype(np.float32)
            elif self.fault == "item":
                return {"sample": sample, "label": label}
            elif self.fault == "crash":
                raise KeyError("no row 517")
        return sample, label
"""


@pytest.mark.parametrize(
    "fault, message",
    [
        ("shape", r"Faulty\[517\]: the sample has shape \(2, 5\), but sample 0 has \(2, 4\); every sample must .*"),
        ("float label", r"Faulty\[517\]: the label 0.5 is not an integer class index; return an int in 0..K-1 .*"),
        ("text label", r"Faulty\[517\]: the label 'cat' is not an integer class index; .*"),
        ("negative", r"Faulty\[517\]: the label -1 is negative; class indices start at 0"),
        ("beyond classes", r"Faulty\[517\]: the label 2 is not an index of its 2 classes"),
        ("nan", r"Faulty\[517\]: the sample holds NaN or infinite values"),
        ("dtype", r"Faulty\[517\]: the sample is float32, but sample 0 is uint8; return one dtype for every sample"),
        ("item", r"Faulty\[517\] returned a dict; __getitem__ must return \(sample, label\)"),
        ("crash", r"Faulty\[517\] raised KeyError: 'no row 517'; its traceback is above"),
        ("empty", r"dataset.custom.class: Faulty is empty \(its len\(\) is 0\)"),
    ],
)
def test_a_sample_that_breaks_the_rules_stops_preprocess_naming_its_index(lab_project, fault, message):
    write_file(lab_project / "faulty.py", FAULTY)
    with pytest.raises(DatasetError, match=f"^{message}$"):
        read_custom("faulty.py:Faulty", {"fault": fault}, lab_project / "processed")
    assert list((lab_project / "processed").iterdir()) == []  # nothing half-written, no scratch array left


def test_a_constructor_that_refuses_the_arguments_is_one_line(lab_project):
    # The constructor is inherited, so the config check (which reads the source) could not tell.
    write_file(
        lab_project / "faulty.py",
        "from torch.utils.data import Dataset\n\n\nclass Base(Dataset):\n    def __init__(self, size):\n"
        "        self.size = size\n\n\nclass Faulty(Base):\n    pass\n",
    )
    with pytest.raises(UserCodeError, match=r"^dataset.custom.args: Faulty\(sise=3\) is refused: missing a required"):
        read_custom("faulty.py:Faulty", {"sise": 3}, lab_project / "processed")


def test_an_error_in_the_labs_dataset_code_shows_its_traceback_then_one_line(lab_project):
    write_file(lab_project / "faulty.py", FAULTY)
    download_dataset({"name": "custom"}, lab_project / "raw")
    settings = SPLIT_SETTINGS | {"custom": {"class": "faulty.py:Faulty", "args": {"fault": "crash"}}}
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "scripts" / "preprocess.py"), "--dataset", json.dumps(settings)),
            *("--raw-dir", "raw", "--processed-dir", "processed", "--threads", "2"),
        ],
        cwd=lab_project,
        env=job_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert 'faulty.py", line 35, in __getitem__\n    raise KeyError("no row 517")' in result.stderr  # the lab's line
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == "error: DatasetError: Faulty[517] raised KeyError: 'no row 517'; its traceback is above"


def test_a_torchvision_dataset_class_is_read_by_reference(lab_project):
    raw = lab_project / "data" / "FashionMNIST" / "raw"  # where torchvision's FashionMNIST looks for its files
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 300), ("t10k", 100)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(count) % 10).astype(np.uint8))
    args = {"root": "data", "download": False}
    meta = read_custom("torchvision.datasets:FashionMNIST", args, lab_project / "processed")
    assert meta["shape"] == [1, 28, 28] and meta["dtype"] == "uint8"
    assert meta["classes"][:2] == ["T-shirt/top", "Trouser"] and meta["counts"]["test"] == 100  # train=False kept
