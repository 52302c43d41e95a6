"""Statistics over seeds: runs that differ only by seed form one configuration."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

COMPARED_METRICS = ("best_val_acc", "test_acc", "train_seconds")
CONFIDENCE = 0.95


def configuration_label(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "all runs"


def mean_and_interval(values: pd.Series) -> dict:
    """Mean, sample standard deviation, 95% t-interval of the mean, and n (the interval needs n >= 2)."""
    n = int(values.count())
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def seed_statistics(summary: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """One row per configuration, best mean validation accuracy first (test accuracy never ranks)."""
    groups = summary.groupby(swept, sort=False, dropna=False) if swept else [((), summary)]
    rows = []
    for key, group in groups:
        values = dict(zip(swept, key if isinstance(key, tuple) else (key,)))
        row = {"configuration": configuration_label(values), **values}
        for metric in COMPARED_METRICS:
            for statistic, value in mean_and_interval(group[metric]).items():
                row[f"{metric}_{statistic}"] = value
        row["seeds"] = " ".join(str(seed) for seed in sorted(group["seed"]))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("best_val_acc_mean", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(1, "rank", range(1, len(table) + 1))
    return table
