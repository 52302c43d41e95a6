"""The evaluate stage: test accuracy, per-class precision and recall, and the confusion matrix of a run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mlpipe.evaluate.stage import confusion_matrix, evaluate_run, per_class_metrics
from mlpipe.models.factory import build_model
from mlpipe.processed import load_meta, load_split
from mlpipe.training.checkpoint import save_checkpoint
from mlpipe.training.outputs import weights


def test_confusion_matrix_rows_are_true_classes_and_per_class_metrics_follow_from_it():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 2])
    confusion = confusion_matrix(labels, predictions, 3)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    metrics = {row["class"]: row for row in per_class_metrics(confusion, ["a", "b", "c"])}
    assert metrics["a"]["precision"] == pytest.approx(1 / 2) and metrics["a"]["recall"] == pytest.approx(1 / 2)
    assert metrics["b"]["precision"] == pytest.approx(2 / 3) and metrics["b"]["recall"] == 1.0
    assert metrics["c"]["precision"] == 1.0 and metrics["c"]["recall"] == pytest.approx(1 / 2)
    assert [row["support"] for row in metrics.values()] == [2, 2, 2]


def test_a_class_never_predicted_has_precision_zero_not_a_division_error():
    confusion = confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2)
    assert per_class_metrics(confusion, ["a", "b"])[1] == {"class": "b", "precision": 0.0, "recall": 0.0, "support": 1}


def test_a_run_is_scored_on_the_test_split_from_its_weights_file(processed_digits, tmp_path):
    meta = load_meta(processed_digits)
    torch.manual_seed(0)
    model = build_model("small_cnn", meta["shape"][0], meta["num_classes"])
    save_checkpoint(
        tmp_path / "best.pt", weights(model, {"model": "small_cnn", "model_args": {}}, meta, epoch=4, val_acc=0.5)
    )

    result = evaluate_run(
        tmp_path / "best.pt", processed_digits, tmp_path / "evaluation.json", tmp_path / "confusion.csv"
    )

    _, labels = load_split(processed_digits, "test")
    confusion = pd.read_csv(tmp_path / "confusion.csv", index_col="true_class")
    assert list(confusion.columns) == meta["classes"] and confusion.to_numpy().sum() == len(labels)
    assert confusion.to_numpy().sum(axis=1).tolist() == np.bincount(labels, minlength=10).tolist()
    assert result["test_accuracy"] == pytest.approx(np.trace(confusion.to_numpy()) / len(labels))
    assert result["best_epoch"] == 4 and result["best_val_acc"] == 0.5 and result["test_count"] == len(labels)
    assert json.loads((tmp_path / "evaluation.json").read_text()) == result
