"""The run registry: one SQLite file with the current runs, every version of every run the history keeps,
every (run, version, epoch, metric), and the study's passes and tags.

Training jobs never write to it: each writes its own ``run_info.json``, ``metrics.csv`` and history record,
which is safe for any number of jobs on NFS or GPFS (where SQLite's locking is not). This module, run by one
analysis job, merges those files into a fresh database and renames it into place. The history store
(mlpipe.history) keeps every version whatever is retrained since, so the registry is never rebuilt from only
what the run folders hold now.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mlpipe.analysis.collect import load_runs
from mlpipe.analysis.html import write_html_table
from mlpipe.cluster.accounting import elapsed_seconds
from mlpipe.history.passes import load_passes, load_tags, prune_weights, record_pass
from mlpipe.history.store import WEIGHTS, Version, load_versions
from mlpipe.io import atomic_path
from mlpipe.layout import METRIC_COLUMNS, OPTIONAL_METRIC_COLUMNS
from mlpipe.requests.profile import run_sample, update_profile

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


VERSION_COLUMNS = {
    "run_id": "TEXT",
    "version": "TEXT",
    "finished": "TEXT",
    "current": "INTEGER",  # 1: the version the run's folder holds now
    "hparams": "TEXT",  # JSON
    "git_commit": "TEXT",
    "git_dirty": "INTEGER",
    "lock_sha256": "TEXT",
    "torch": "TEXT",
    "host": "TEXT",
    "slurm_job_id": "TEXT",
    "device": "TEXT",
    "data_checksum": "TEXT",
    "code": "TEXT",  # JSON: file -> checksum
    "best_val_acc": "REAL",
    "best_val_loss": "REAL",
    "test_acc": "REAL",
    "train_seconds": "REAL",
    "weights": "TEXT",  # the best weights kept in the history, or NULL when pruned
}
SCHEMA = f"""
CREATE TABLE runs ({", ".join(f"{name} {kind}" for name, kind in RUN_COLUMNS.items())}, version TEXT);
CREATE TABLE versions ({", ".join(f"{name} {kind}" for name, kind in VERSION_COLUMNS.items())},
    PRIMARY KEY (run_id, version));
CREATE TABLE epochs (run_id TEXT, version TEXT, epoch INTEGER, metric TEXT, value REAL);
CREATE TABLE passes (number INTEGER PRIMARY KEY, created TEXT);
CREATE TABLE pass_runs (number INTEGER REFERENCES passes(number), run_id TEXT, version TEXT);
CREATE TABLE tags (name TEXT PRIMARY KEY, created TEXT);
CREATE TABLE tag_runs (name TEXT REFERENCES tags(name), run_id TEXT, version TEXT);
"""


def version_row(found: Version, current: bool) -> dict:
    record, provenance = found.record, found.record.get("provenance", {})
    return {
        "run_id": found.run_id,
        "version": found.version,
        "finished": record.get("finished"),
        "current": int(current),
        "hparams": json.dumps(record["hparams"], sort_keys=True),
        **{key: provenance.get(key) for key in ("git_commit", "lock_sha256", "torch", "host", "slurm_job_id")},
        "git_dirty": None if provenance.get("git_dirty") is None else int(provenance["git_dirty"]),
        "device": record.get("device"),
        "data_checksum": record.get("data", {}).get("checksum"),
        "code": json.dumps(record.get("code", {}), sort_keys=True),
        "best_val_acc": record.get("best_val_acc"),
        "best_val_loss": record.get("best_val_loss"),
        "test_acc": (found.evaluation or {}).get("test_accuracy"),
        "train_seconds": record.get("train_seconds"),
        "weights": str(found.folder / WEIGHTS) if found.has_weights else None,
    }


def build_registry(
    runs_dir: Path,
    run_ids: list[str],
    database: Path,
    provenance_csv: Path,
    history_dir: Path | None = None,
    keep_weights: str = "all",
    profile: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Write the registry (the current runs, and every version the history keeps, its passes and tags) and a
    provenance table for the report; record the current versions as a pass; return the number of runs.

    With ``keep_weights: tagged``, the weights of versions neither current nor tagged are deleted first. With
    ``profile``, what each finished run used (its job's time from SLURM's accounting, read with ``environ``) joins the
    study's resource profile (mlpipe.requests).
    """
    runs, _ = load_runs(runs_dir, run_ids)
    if profile is not None:
        job_ids = (run.info.get("provenance", {}).get("slurm_job_id") for run in runs)
        elapsed = elapsed_seconds(job_ids, environ) if environ is not None else {}
        samples = [(run, run_sample(run.run_config, run.info, elapsed)) for run in runs]
        update_profile(
            profile,
            ((sample[0], run.run_config.get("version") or run.run_id, sample[1]) for run, sample in samples if sample),
        )
    rows = [run_row(run) | {"version": run.run_config.get("version")} for run in runs]
    current = {row["run_id"]: row["version"] for row in rows if row["version"]}
    history = load_versions(history_dir) if history_dir else {}
    if history_dir is not None:
        record_pass(history_dir, current)
        if keep_weights == "tagged":
            prune_weights(history, current, load_tags(history_dir))
    with atomic_path(database) as tmp:
        connection = sqlite3.connect(tmp)
        try:
            # A new file that is renamed into place whole once written: no journal is needed.
            connection.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + SCHEMA)
            placeholders = ", ".join(f":{name}" for name in [*RUN_COLUMNS, "version"])
            connection.executemany(f"INSERT INTO runs VALUES ({placeholders})", rows)
            versions = [found for by_version in history.values() for found in by_version.values()]
            placeholders = ", ".join(f":{name}" for name in VERSION_COLUMNS)
            connection.executemany(
                f"INSERT INTO versions VALUES ({placeholders})",
                (version_row(found, current.get(found.run_id) == found.version) for found in versions),
            )
            connection.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?, ?)", _epoch_rows(runs, versions))
            # Built once all rows are in: faster than keeping it up to date row by row.
            connection.execute("CREATE UNIQUE INDEX epochs_key ON epochs (run_id, version, epoch, metric)")
            if history_dir is not None:
                _insert_sets(connection, "passes", "pass_runs", "number", load_passes(history_dir))
                _insert_sets(connection, "tags", "tag_runs", "name", load_tags(history_dir).values())
            connection.commit()
        finally:
            connection.close()
    provenance = pd.DataFrame(rows).drop(columns=["hparams"])
    with atomic_path(provenance_csv) as tmp:
        provenance.to_csv(tmp, index=False)
    write_html_table(provenance, provenance_csv.with_suffix(".html"), "Provenance of each run")
    return len(rows)


def _epoch_rows(runs: list, versions: list[Version]):
    """Every (run, version, epoch, metric) the history keeps, and those of current runs it does not (a run
    trained before runs had versions)."""
    kept = {(found.run_id, found.version) for found in versions}
    for found in versions:
        for row in found.record.get("metrics", []):
            for metric, value in _measured(row):
                yield found.run_id, found.version, int(row["epoch"]), metric, value
    for run in runs:
        version = run.run_config.get("version") or ""
        if (run.run_id, version) in kept:
            continue
        for row in run.metrics.to_dict("records"):
            for metric, value in _measured(row):
                yield run.run_id, version, int(row["epoch"]), metric, value


def _measured(row: dict):
    """(metric, value) of one epoch: every metric, and each optional one (mlpipe.gpuwatch) that was measured."""
    for metric in EPOCH_METRICS:
        yield metric, float(row[metric])
    for metric in OPTIONAL_METRIC_COLUMNS:
        value = row.get(metric)
        if value is not None and not math.isnan(value):
            yield metric, float(value)


def _insert_sets(connection: sqlite3.Connection, table: str, members: str, key: str, sets) -> None:
    """Passes or tags: one row each, and one row per run version they name."""
    for found in sets:
        connection.execute(f"INSERT INTO {table} VALUES (?, ?)", (found[key], found["created"]))
        connection.executemany(
            f"INSERT INTO {members} VALUES (?, ?, ?)",
            [(found[key], run_id, version) for run_id, version in found["runs"].items()],
        )
