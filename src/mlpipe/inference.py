"""Inference over a fixed set of examples: loss, accuracy and predictions."""

from __future__ import annotations

import torch

from mlpipe.device import Precision
from mlpipe.processed import Normalizer, eval_batches


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images,
    labels,
    batch_size: int,
    device: torch.device,
    normalizer: Normalizer,
    precision: Precision,
) -> tuple[float, torch.Tensor]:
    """Return the summed cross-entropy loss and the predicted class of every example."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    predictions = []
    for batch_images, batch_labels in eval_batches(images, labels, batch_size, device, normalizer):
        with torch.autocast(device.type, dtype=precision.autocast_dtype, enabled=precision.autocast_dtype is not None):
            logits = model(batch_images)
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), batch_labels, reduction="sum")
        predictions.append(logits.argmax(1))
    model.train(was_training)
    return float(loss_sum), torch.cat(predictions).cpu()


def evaluate_model(model, images, labels, batch_size, device, normalizer, precision) -> tuple[float, float]:
    """Mean loss and accuracy."""
    loss_sum, predictions = predict(model, images, labels, batch_size, device, normalizer, precision)
    labels_cpu = labels.cpu() if isinstance(labels, torch.Tensor) else torch.from_numpy(labels)
    return loss_sum / len(predictions), float((predictions == labels_cpu).double().mean())
