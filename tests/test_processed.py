"""Reading processed data: normalisation."""

from __future__ import annotations

import torch

from mlpipe.processed import Normalizer


def test_normalizer_matches_the_textbook_formula():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.2, 0.3]
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, torch.device("cpu"), False)(images), expected, atol=1e-5)
