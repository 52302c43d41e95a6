"""The run registry: one SQLite file with every run and every (run, epoch, metric).

Training jobs never write to it: each writes its own ``run_info.json`` and ``metrics.csv``, which
is safe for any number of jobs on NFS or GPFS (where SQLite's locking is not). This module, run by
one analysis job, merges those files into a fresh database and renames it into place.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from mlpipe.analysis.collect import load_runs
from mlpipe.analysis.html import write_html_table
from mlpipe.io import atomic_path
from mlpipe.layout import METRIC_COLUMNS

RUN_COLUMNS = {
    "run_id": "TEXT PRIMARY KEY",
    "hparams": "TEXT",  # JSON
    "status": "TEXT",
    "start_time": "TEXT",
    "end_time": "TEXT",
    "attempts": "INTEGER",
    "git_commit": "TEXT",
    "git_dirty": "INTEGER",
    "lock_sha256": "TEXT",
    "python": "TEXT",
    "torch": "TEXT",
    "snakemake": "TEXT",
    "host": "TEXT",
    "slurm_job_id": "TEXT",
    "slurm_partition": "TEXT",
    "device": "TEXT",
    "best_val_acc": "REAL",
    "test_acc": "REAL",
    "wall_seconds": "REAL",
    "train_seconds": "REAL",
    "peak_host_memory_mb": "REAL",
    "peak_gpu_memory_mb": "REAL",
}
EPOCH_METRICS = [column for column in METRIC_COLUMNS if column != "epoch"]


def run_row(run) -> dict:
    info, provenance, usage = run.info, run.info.get("provenance", {}), run.info.get("usage", {})
    return {
        "run_id": run.run_id,
        "hparams": json.dumps(run.hparams, sort_keys=True),
        "status": info.get("status", "unknown"),
        "start_time": info.get("first_start_time", info.get("start_time")),
        "end_time": info.get("end_time"),
        "attempts": info.get("attempts"),
        **{
            key: provenance.get(key)
            for key in (
                "git_commit",
                "lock_sha256",
                "python",
                "torch",
                "snakemake",
                "host",
                "slurm_job_id",
                "slurm_partition",
                "device",
            )
        },
        "git_dirty": None if provenance.get("git_dirty") is None else int(provenance["git_dirty"]),
        "best_val_acc": run.run_config["best_val_acc"],
        "test_acc": run.evaluation["test_accuracy"],
        "wall_seconds": usage.get("wall_seconds"),
        "train_seconds": run.run_config["train_seconds"],
        "peak_host_memory_mb": usage.get("peak_host_memory_mb"),
        "peak_gpu_memory_mb": usage.get("peak_gpu_memory_mb"),
    }


def build_registry(runs_dir: Path, run_ids: list[str], database: Path, provenance_csv: Path) -> int:
    """Write the registry and a provenance table for the report; return the number of runs."""
    runs, _ = load_runs(runs_dir, run_ids)
    rows = [run_row(run) for run in runs]
    with atomic_path(database) as tmp:
        connection = sqlite3.connect(tmp)
        try:
            columns = ", ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS.items())
            connection.execute(f"CREATE TABLE runs ({columns})")
            connection.execute(
                "CREATE TABLE epochs (run_id TEXT REFERENCES runs(run_id), epoch INTEGER, metric TEXT, value REAL,"
                " PRIMARY KEY (run_id, epoch, metric))"
            )
            placeholders = ", ".join(f":{name}" for name in RUN_COLUMNS)
            connection.executemany(f"INSERT INTO runs VALUES ({placeholders})", rows)
            connection.executemany(
                "INSERT INTO epochs VALUES (?, ?, ?, ?)",
                [
                    (run.run_id, int(epoch_row["epoch"]), metric, float(epoch_row[metric]))
                    for run in runs
                    for _, epoch_row in run.metrics.iterrows()
                    for metric in EPOCH_METRICS
                ],
            )
            connection.commit()
        finally:
            connection.close()
    provenance = pd.DataFrame(rows).drop(columns=["hparams"])
    with atomic_path(provenance_csv) as tmp:
        provenance.to_csv(tmp, index=False)
    write_html_table(provenance, provenance_csv.with_suffix(".html"), "Provenance of each run")
    return len(rows)
