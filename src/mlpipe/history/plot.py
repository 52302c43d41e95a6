"""The comparison as a picture: each configuration's interval in the baseline and in the current pass."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mlpipe.analysis.plots import save_figure
from mlpipe.history.compare import METRICS

SIDES = (("baseline", "tab:gray", -0.12), ("current", "tab:blue", 0.12))
TITLES = {"val_acc": "Best validation accuracy", "test_acc": "Test accuracy"}


def plot_before_after(table: pd.DataFrame, baseline_name: str, path: Path) -> None:
    """Per configuration and metric: mean and 95% interval before (baseline) and now (current pass)."""
    labels = list(table["configuration"])
    figure, axes = plt.subplots(1, len(METRICS), figsize=(max(7.0, 1.2 * len(labels) + 3) * len(METRICS) / 2, 4.5))
    positions = np.arange(len(labels))
    for axis, metric in zip(axes, METRICS):
        for side, color, offset in SIDES:
            means = table[f"{metric}_{side}_mean"].to_numpy(dtype=float)
            errors = np.nan_to_num(
                np.vstack(
                    [
                        means - table[f"{metric}_{side}_ci95_low"].to_numpy(dtype=float),
                        table[f"{metric}_{side}_ci95_high"].to_numpy(dtype=float) - means,
                    ]
                )
            )
            name = f"baseline ({baseline_name})" if side == "baseline" else "current pass"
            axis.errorbar(positions + offset, means, yerr=errors, fmt="o", capsize=5, color=color, label=name)
        axis.set_xticks(
            positions, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
        )
        axis.set(ylabel="accuracy (mean over seeds, 95% CI)", title=TITLES[metric])
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize="small")
    save_figure(figure, path)
