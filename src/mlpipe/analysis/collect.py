"""Read every run's outputs; a run whose files are missing or corrupt is set aside with the reason.

The analysis never stops on one bad run folder: the tables and plots are made from the good
runs, and ``excluded_runs.csv`` (shown in the report) names the others and why.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlpipe.layout import METRIC_COLUMNS, OPTIONAL_METRIC_COLUMNS, RunFiles


class BadRunFolder(ValueError):
    """A run folder whose outputs cannot be used; the message names the file."""


@dataclass
class Run:
    run_id: str
    hparams: dict
    run_config: dict
    evaluation: dict
    metrics: pd.DataFrame
    confusion: pd.DataFrame
    info: dict  # run_info.json: status, provenance, resource use ({} if the file is gone)


def load_runs(runs_dir: Path, run_ids: list[str]) -> tuple[list[Run], list[dict]]:
    runs, excluded = [], []
    for run_id in run_ids:
        try:
            runs.append(load_run(runs_dir / run_id))
        except BadRunFolder as error:
            excluded.append({"run_id": run_id, "reason": str(error)})
    return runs, excluded


def load_run(run_dir: Path) -> Run:
    files = RunFiles.of(run_dir)
    run_config = _json(files.run_config)
    evaluation = _json(files.evaluation)
    for key in ("best_val_acc", "best_val_loss", "train_seconds", "hparams"):
        _require(run_config, key, files.run_config)
    _require(evaluation, "test_accuracy", files.evaluation)
    metrics = _csv(files.metrics)
    missing = [column for column in METRIC_COLUMNS if column not in metrics.columns]
    if missing:
        raise BadRunFolder(f"{files.metrics}: missing columns {', '.join(missing)}")
    if metrics.empty:
        raise BadRunFolder(f"{files.metrics}: no epochs")
    if metrics[METRIC_COLUMNS].isna().any().any():
        raise BadRunFolder(f"{files.metrics}: empty or non-numeric values")
    for column in OPTIONAL_METRIC_COLUMNS:  # empty where not measured
        if column not in metrics.columns:  # a run folder written before the column existed
            metrics[column] = float("nan")
        elif not pd.api.types.is_numeric_dtype(metrics[column]):
            raise BadRunFolder(f"{files.metrics}: non-numeric values in {column}")
    confusion = _csv(files.confusion, index_col="true_class")
    info = _json(files.run_info) if files.run_info.exists() else {}
    return Run(run_dir.name, run_config["hparams"], run_config, evaluation, metrics, confusion, info)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadRunFolder(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRunFolder(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise BadRunFolder(f"{path}: not a JSON object")
    return data


def _require(data: dict, key: str, path: Path) -> None:
    value = data.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise BadRunFolder(f"{path}: no valid {key!r}")


def _csv(path: Path, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise BadRunFolder(f"{path}: missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError) as error:
        raise BadRunFolder(f"{path}: not a readable CSV table ({error})") from None
