"""Reading processed data: normalisation, and damaged files named with the way to rebuild them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from mlpipe.processed import REBUILD_HINT, Normalizer, ProcessedDataError, load_meta, load_split


def test_normalizer_matches_the_textbook_formula():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.2, 0.3]
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, torch.device("cpu"), False)(images), expected, atol=1e-5)


@pytest.fixture
def processed_copy(processed_digits, tmp_path) -> Path:
    """A private copy of the preprocessed built-in dataset, to damage."""
    return Path(shutil.copytree(processed_digits, tmp_path / "processed"))


def cut_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["train_images.npy", "train_labels.npy"])
def test_an_array_cut_short_is_named_with_the_rule_to_rerun(processed_copy, name):
    cut_to_half(processed_copy / name)
    with pytest.raises(ProcessedDataError) as error:
        load_split(processed_copy, "train")
    message = str(error.value)
    assert message.startswith(f"{processed_copy / name}: cannot be read (")
    assert message.endswith(REBUILD_HINT) and "snakemake --forcerun preprocess" in REBUILD_HINT
    assert "\n" not in message


def test_images_and_labels_of_different_lengths_are_refused(processed_copy):
    labels = np.load(processed_copy / "val_labels.npy")
    np.save(processed_copy / "val_labels.npy", labels[:-3])
    with pytest.raises(ProcessedDataError, match=r"val_images.npy: 229 images but val_labels.npy has 226 labels; "):
        load_split(processed_copy, "val")


@pytest.mark.parametrize("text, problem", [("", "not valid JSON"), ("{}", "lacks dataset, classes,"), ("[1]", "lacks")])
def test_an_empty_or_incomplete_meta_json_is_named(processed_copy, text, problem):
    (processed_copy / "meta.json").write_text(text)
    with pytest.raises(ProcessedDataError) as error:
        load_meta(processed_copy)
    assert str(error.value).startswith(f"{processed_copy / 'meta.json'}: {problem}")
    assert str(error.value).endswith(REBUILD_HINT)


def test_float_signals_are_normalised_per_channel_in_their_own_units():
    signals = torch.randn(4, 3, 10, dtype=torch.float64).float() * 5 + 100
    mean, std = [100.0, 99.0, 101.0], [5.0, 4.0, 6.0]
    normalizer = Normalizer(mean, std, torch.device("cpu"), True, sample_rank=2, dtype="float32")
    expected = (signals - torch.tensor(mean).view(1, 3, 1)) / torch.tensor(std).view(1, 3, 1)
    assert torch.allclose(normalizer(signals), expected, atol=1e-5)  # no /255, and no channels_last for (N, C, T)


def test_feature_vectors_are_normalised_per_feature():
    features = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    normalizer = Normalizer.of(
        {"mean": [2.0, 20.0], "std": [1.0, 10.0], "shape": [2], "dtype": "float32"}, torch.device("cpu"), False
    )
    assert normalizer(features).tolist() == [[-1.0, -1.0], [1.0, 1.0]]


def test_the_readme_quotes_the_rebuild_hint_as_the_code_prints_it():
    assert f"`{REBUILD_HINT}`" in " ".join((REPO / "README.md").read_text().split())
