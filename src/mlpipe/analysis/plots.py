"""Plots of a sweep, as PNG files readable at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mlpipe.analysis.summary import best_run_id
from mlpipe.io import atomic_path

DPI = 120


def plot_sweep(
    summary: pd.DataFrame,
    runs_dir: Path,
    swept_keys: list[str],
    *,
    learning_curves: Path,
    test_accuracy: Path,
    confusion: Path,
) -> None:
    """Every plot of a sweep, from its summary table and run folders."""
    metrics = {run_id: pd.read_csv(runs_dir / run_id / "metrics.csv") for run_id in summary["run_id"]}
    plot_learning_curves(metrics, learning_curves)
    plot_test_accuracy(summary, swept_keys, test_accuracy)
    best = best_run_id(summary)
    best_confusion = pd.read_csv(runs_dir / best / "confusion.csv", index_col="true_class")
    plot_confusion(best_confusion, f"Confusion matrix of {best} (best validation accuracy)", confusion)


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def plot_learning_curves(metrics_by_run: dict[str, pd.DataFrame], path: Path) -> None:
    """Train loss and validation accuracy per epoch, one line per run."""
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for run_id, metrics in metrics_by_run.items():
        loss_axis.plot(metrics["epoch"], metrics["train_loss"], label=run_id)
        acc_axis.plot(metrics["epoch"], metrics["val_acc"], label=run_id)
    loss_axis.set(xlabel="epoch", ylabel="train loss", yscale="log", title="Training loss")
    acc_axis.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
    acc_axis.legend(fontsize="small", loc="lower right")
    save_figure(figure, path)


def plot_test_accuracy(summary: pd.DataFrame, swept_keys: list[str], path: Path) -> None:
    """Test accuracy of each run, grouped by sweep value (one panel per swept hyperparameter)."""
    keys = swept_keys or ["seed"]
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for axis, key in zip(axes[0], keys):
        values = sorted(summary[key].unique(), key=_sort_key)
        for position, value in enumerate(values):
            accuracies = summary.loc[summary[key] == value, "test_acc"]
            axis.scatter(np.full(len(accuracies), position), accuracies, alpha=0.7)
            axis.hlines(accuracies.mean(), position - 0.2, position + 0.2, color="black")
        axis.set_xticks(range(len(values)), [str(value) for value in values])
        axis.set(xlabel=key, ylabel="test accuracy", title=f"Test accuracy by {key} (line: mean)")
        axis.grid(alpha=0.3, axis="y")
    save_figure(figure, path)


def plot_confusion(confusion: pd.DataFrame, title: str, path: Path) -> None:
    """Confusion matrix with counts in each cell (rows: true class, columns: predicted)."""
    matrix = confusion.to_numpy()
    classes = list(confusion.columns)
    size = max(4.0, 0.45 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    if len(classes) <= 30:
        for (row, column), count in np.ndenumerate(matrix):
            axis.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if count > matrix.max() / 2 else "black",
                fontsize="small",
            )
    ticks = range(len(classes))
    axis.set_xticks(ticks, classes, rotation=90 if len(classes) > 10 else 0)
    axis.set_yticks(ticks, classes)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    save_figure(figure, path)


def _sort_key(value):
    return (0, value) if isinstance(value, (int, float, np.number)) else (1, str(value))
