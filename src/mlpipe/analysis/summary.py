"""Collect every run's outputs into one table, one row per run."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlpipe.io import atomic_path, read_json

log = logging.getLogger(__name__)


def summarize_runs(runs_dir: Path, run_ids: list[str], swept_keys: list[str]) -> pd.DataFrame:
    """Return one row per run: id, swept hyperparameters, seed, best val accuracy, test accuracy, time."""
    rows = []
    for run_id in run_ids:
        run_dir = runs_dir / run_id
        run_config = read_json(run_dir / "run_config.json")
        evaluation = read_json(run_dir / "evaluation.json")
        hparams = run_config["hparams"]
        rows.append(
            {
                "run_id": run_id,
                **{key: hparams[key] for key in swept_keys},
                "seed": hparams["seed"],
                "best_val_acc": run_config["best_val_acc"],
                "best_epoch": run_config["best_epoch"],
                "test_acc": evaluation["test_accuracy"],
                "train_seconds": run_config["train_seconds"],
            }
        )
    return pd.DataFrame(rows)


def best_run_id(summary: pd.DataFrame) -> str:
    """The run with the highest validation accuracy; test accuracy never chooses."""
    return str(summary.sort_values("best_val_acc", ascending=False, kind="stable").iloc[0]["run_id"])


def write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
