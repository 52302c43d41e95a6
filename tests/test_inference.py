"""Inference over a fixed set of examples, in batches: summed loss, predictions, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpipe.device import choose_precision
from mlpipe.inference import evaluate_model, predict
from mlpipe.processed import Normalizer

CPU = torch.device("cpu")


def test_batched_inference_matches_one_pass_over_every_example():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 4))
    images = np.random.default_rng(0).integers(0, 256, (10, 2, 3, 3), dtype=np.uint8)
    labels = np.arange(10) % 4
    normalizer = Normalizer([0.5, 0.4], [0.2, 0.3], CPU, channels_last=False)
    # 10 examples in batches of 3: the last batch is smaller, and nothing is dropped.
    loss_sum, predictions = predict(model, images, labels, 3, CPU, normalizer, choose_precision(CPU))
    with torch.no_grad():
        logits = model(normalizer(torch.from_numpy(images)))
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels), reduction="sum")
    assert loss_sum == pytest.approx(float(expected), rel=1e-6)
    assert torch.equal(predictions, logits.argmax(1))
    mean_loss, accuracy = evaluate_model(model, images, labels, 3, CPU, normalizer, choose_precision(CPU))
    assert mean_loss == pytest.approx(float(expected) / 10, rel=1e-6)
    assert accuracy == pytest.approx(float((logits.argmax(1).numpy() == labels).mean()))
    assert model.training  # left in the mode it was found in
