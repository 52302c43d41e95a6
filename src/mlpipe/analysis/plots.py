"""Plots of a sweep, as PNG files readable at a glance.

Runs that differ only by seed are one configuration: curves show the mean over its seeds with a
band from the lowest to the highest seed, bar charts show means with 95% confidence intervals.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mlpipe.analysis.stats import ACCURACY_BOUNDS, configuration_label, mean_and_interval
from mlpipe.io import atomic_path
from mlpipe.layout import RunFiles

DPI = 120


def plot_sweep(
    summary: pd.DataFrame, comparison: pd.DataFrame, runs_dir: Path, swept: list[str], outputs: dict[str, Path]
) -> None:
    """Every plot of a sweep, from its tables and run folders."""
    files = {run_id: RunFiles.of(runs_dir / run_id) for run_id in summary["run_id"]}
    metrics = {run_id: pd.read_csv(run.metrics) for run_id, run in files.items()}
    by_configuration = _runs_by_configuration(summary, swept)
    plot_learning_curves(metrics, by_configuration, outputs["learning_curves"])
    plot_test_accuracy(summary, swept, outputs["test_accuracy"])
    best = comparison.iloc[0]["configuration"]
    confusions = [pd.read_csv(files[run_id].confusion, index_col="true_class") for run_id in by_configuration[best]]
    title = f"Confusion matrix of the best configuration ({best}), summed over {len(confusions)} seed(s)"
    plot_confusion(sum(confusions[1:], confusions[0]), title, outputs["confusion"])
    plot_resources(summary, outputs["resources"])


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def plot_learning_curves(metrics: dict[str, pd.DataFrame], by_configuration: dict[str, list[str]], path: Path) -> None:
    """Training loss and validation accuracy per epoch: mean over seeds, band from min to max seed."""
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, run_ids in by_configuration.items():
        for axis, column in ((loss_axis, "train_loss"), (acc_axis, "val_acc")):
            table = pd.concat([metrics[run_id].set_index("epoch")[column] for run_id in run_ids], axis=1)
            line = axis.plot(table.index, table.mean(axis=1), label=f"{label} (n={len(run_ids)})")[0]
            if len(run_ids) > 1:
                axis.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=line.get_color(), alpha=0.2)
    loss_axis.set(xlabel="epoch", ylabel="train loss", yscale="log", title="Training loss")
    acc_axis.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no ticks at 1.5, 2.5
    acc_axis.legend(fontsize="small", loc="lower right")
    save_figure(figure, path)


def plot_test_accuracy(summary: pd.DataFrame, swept: list[str], path: Path) -> None:
    """Mean test accuracy per value of each swept hyperparameter, with 95% confidence intervals."""
    keys = swept or ["seed"]
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for axis, key in zip(axes[0], keys):
        values = sorted(summary[key].unique(), key=_sort_key)
        intervals = [
            mean_and_interval(summary.loc[summary[key] == value, "test_acc"], ACCURACY_BOUNDS) for value in values
        ]
        means = np.array([interval["mean"] for interval in intervals])
        lows = np.array([interval["ci95_low"] for interval in intervals])
        highs = np.array([interval["ci95_high"] for interval in intervals])
        errors = np.nan_to_num(np.vstack([means - lows, highs - means]))
        positions = np.arange(len(values))
        axis.errorbar(positions, means, yerr=errors, fmt="o", capsize=6, color="black", label="mean, 95% CI")
        for position, value in zip(positions, values):
            accuracies = summary.loc[summary[key] == value, "test_acc"]
            axis.scatter(np.full(len(accuracies), position + 0.08), accuracies, alpha=0.5, s=18, label=None)
        axis.set_xticks(positions, [str(value) for value in values])
        axis.set(xlabel=key, ylabel="test accuracy", title=f"Test accuracy by {key}")
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize="small")
    save_figure(figure, path)


def plot_confusion(confusion: pd.DataFrame, title: str, path: Path) -> None:
    """Confusion matrix with counts in each cell (rows: true class, columns: predicted)."""
    matrix = confusion.to_numpy()
    classes = list(confusion.columns)
    size = max(4.5, 0.45 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    if len(classes) <= 30:
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if count > matrix.max() / 2 else "black"
            axis.text(column, row, str(count), ha="center", va="center", color=color, fontsize="small")
    ticks = range(len(classes))
    axis.set_xticks(ticks, classes, rotation=90 if len(classes) > 10 else 0)
    axis.set_yticks(ticks, classes)
    axis.set(xlabel="predicted class", ylabel="true class")
    axis.set_title(title, fontsize="medium")
    save_figure(figure, path)


def plot_resources(summary: pd.DataFrame, path: Path) -> None:
    """Training time and throughput of each run."""
    figure, (time_axis, rate_axis) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.35 * len(summary) + 1.5)))
    positions = np.arange(len(summary))
    time_axis.barh(positions, summary["train_seconds"], color="tab:blue")
    rate_axis.barh(positions, summary["images_per_second"], color="tab:green")
    for axis in (time_axis, rate_axis):
        axis.set_yticks(positions, summary["run_id"], fontsize="small")
        axis.invert_yaxis()
        axis.grid(alpha=0.3, axis="x")
    rate_axis.set_yticklabels([])
    time_axis.set(xlabel="seconds", title="Training time per run")
    rate_axis.set(xlabel="images / second", title="Training throughput per run")
    save_figure(figure, path)


def _runs_by_configuration(summary: pd.DataFrame, swept: list[str]) -> dict[str, list[str]]:
    if not swept:
        return {configuration_label({}): list(summary["run_id"])}
    groups = summary.groupby(swept, sort=False)
    return {
        configuration_label(dict(zip(swept, key if isinstance(key, tuple) else (key,)))): list(group["run_id"])
        for key, group in groups
    }


def _sort_key(value):
    return (0, value) if isinstance(value, (int, float, np.number)) else (1, str(value))
