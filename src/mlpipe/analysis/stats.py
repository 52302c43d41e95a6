"""Statistics over seeds: runs that differ only by seed form one configuration."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
# Each compared metric with the range it lives in: a t-interval over few seeds can pass 1 or fall below 0,
# and an interval is cut to its metric's range (accuracies to [0, 1]; losses and seconds at 0).
ACCURACY_BOUNDS = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)
UNBOUNDED = (-math.inf, math.inf)
COMPARED_METRICS = {
    "best_val_acc": ACCURACY_BOUNDS,
    "best_val_loss": NON_NEGATIVE,
    "test_acc": ACCURACY_BOUNDS,
    "train_seconds": NON_NEGATIVE,
}


def configuration_label(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "all runs"


def mean_and_interval(values: pd.Series, bounds: tuple[float, float] = UNBOUNDED) -> dict:
    """Mean, sample standard deviation, 95% t-interval of the mean (cut to ``bounds``; needs n >= 2), and n."""
    n = int(values.count())
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return {"mean": mean, "std": std, "ci95_low": low, "ci95_high": high, "n": n}


def seed_statistics(summary: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """One row per configuration, best mean validation accuracy first (test accuracy never ranks).

    Configurations tied on it (small validation sets often give 100 %) are ordered by mean validation loss.
    """
    groups = summary.groupby(swept, sort=False, dropna=False) if swept else [((), summary)]
    rows = []
    for key, group in groups:
        values = dict(zip(swept, key if isinstance(key, tuple) else (key,)))
        row = {"configuration": configuration_label(values), **values}
        for metric, bounds in COMPARED_METRICS.items():
            for statistic, value in mean_and_interval(group[metric], bounds).items():
                row[f"{metric}_{statistic}"] = value
        row["seeds"] = " ".join(str(seed) for seed in sorted(group["seed"]))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(
        ["best_val_acc_mean", "best_val_loss_mean"], ascending=[False, True], kind="stable"
    )
    table = table.reset_index(drop=True)
    table.insert(1, "rank", range(1, len(table) + 1))
    return table


def difference_of_means(current: pd.Series, baseline: pd.Series) -> dict:
    """``current`` mean minus ``baseline`` mean, its 95% Welch interval (unequal variances, Welch-Satterthwaite
    degrees of freedom) and the two-sided p-value of Welch's t-test; interval and p need n >= 2 on each side."""
    current, baseline = current.dropna(), baseline.dropna()
    n_current, n_baseline = len(current), len(baseline)
    difference = float(current.mean() - baseline.mean())
    result = {"diff": difference, "diff_ci95_low": math.nan, "diff_ci95_high": math.nan, "p_value": math.nan}
    if n_current < 2 or n_baseline < 2:
        return result
    share_current, share_baseline = current.var(ddof=1) / n_current, baseline.var(ddof=1) / n_baseline
    variance = share_current + share_baseline
    if variance == 0:  # every seed gave the same number on both sides: no spread to test against
        return result | {"diff_ci95_low": difference, "diff_ci95_high": difference}
    freedom = variance**2 / (share_current**2 / (n_current - 1) + share_baseline**2 / (n_baseline - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, freedom)) * math.sqrt(variance)
    p_value = float(stats.ttest_ind(current, baseline, equal_var=False).pvalue)
    return result | {"diff_ci95_low": difference - half, "diff_ci95_high": difference + half, "p_value": p_value}
