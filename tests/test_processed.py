"""Reading processed data: normalisation."""

from __future__ import annotations

import torch

from mlpipe.processed import Normalizer


def test_normalizer_matches_the_textbook_formula():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.2, 0.3]
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, torch.device("cpu"), False)(images), expected, atol=1e-5)


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
