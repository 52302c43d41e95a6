"""Test accuracy, per-class precision/recall and the confusion matrix of one run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mlpipe.device import choose_device, choose_precision
from mlpipe.history.store import current_version, record_evaluation
from mlpipe.inference import predict
from mlpipe.io import write_csv, write_json
from mlpipe.models.factory import build_model
from mlpipe.processed import Normalizer, load_split
from mlpipe.training.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_metrics(confusion: np.ndarray, classes: list[str]) -> list[dict]:
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "support": int(n)}
        for name, p, r, n in zip(classes, precision, recall, actual)
    ]


def evaluate_run(
    best_path: Path,
    processed_dir: Path,
    metrics_path: Path,
    confusion_path: Path,
    batch_size: int = 1024,
    history_dir: Path | None = None,
) -> dict:
    """Score the run's best weights on the test split; with ``history_dir``, also the version it belongs to."""
    checkpoint = load_checkpoint(best_path)
    device = choose_device(0)
    model = build_model(
        checkpoint["model"],
        checkpoint["in_channels"],
        checkpoint["num_classes"],
        input_shape=checkpoint["shape"],
        model_args=checkpoint["model_args"],
    ).to(device)
    model.load_state_dict(checkpoint["state_dict"])
    images, labels = load_split(processed_dir, "test")
    normalizer = Normalizer.of(checkpoint, device, channels_last=False)
    loss_sum, predictions = predict(
        model, images, labels, batch_size, device, normalizer, choose_precision(device, "fp32")
    )
    predictions = predictions.numpy()
    classes = checkpoint["classes"]
    confusion = confusion_matrix(labels, predictions, len(classes))
    result = {
        "test_accuracy": float((predictions == labels).mean()),
        "test_loss": loss_sum / len(labels),
        "test_count": len(labels),
        "best_epoch": checkpoint["epoch"],
        "best_val_acc": checkpoint["val_acc"],
        "per_class": per_class_metrics(confusion, classes),
    }
    write_csv(
        confusion_path,
        ({"true_class": name, **dict(zip(classes, map(int, row)))} for name, row in zip(classes, confusion)),
        ["true_class", *classes],
    )
    version = current_version(best_path.parent)  # run_config.json beside the weights names their version
    if history_dir is not None and version:  # before the output: a run evaluated is evaluated in its history
        record_evaluation(history_dir, best_path.parent.name, version, result)
    write_json(metrics_path, result)
    log.info("test accuracy %.4f on %d images", result["test_accuracy"], len(labels))
    return result
