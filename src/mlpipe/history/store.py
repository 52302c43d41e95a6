"""The history store: every finished version of every run, outside Snakemake's declared outputs.

``<results_dir>/history/`` holds, per run and version, ``record.json`` (hyperparameters, provenance, code and
data checksums, per-epoch metrics), ``evaluation.json`` and the best weights; ``passes/`` and ``tags/`` hold the
sets of versions a study had at one time. Snakemake never sees these files, so it never deletes them when it
retrains a run, and they never make anything rerun. Each job writes only its own run's files, atomically; the
registry job reads them all.
"""

from __future__ import annotations

import datetime
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlpipe.io import atomic_path, read_json, write_json
from mlpipe.layout import RunFiles

RECORD, EVALUATION, WEIGHTS = "record.json", "evaluation.json", "best.pt"


def new_version_id(now: datetime.datetime | None = None) -> str:
    """A version's id: when it finished, and a few random characters (``20261204T101530Z-3fa2c1``)."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def version_folder(history_dir: Path, run_id: str, version: str) -> Path:
    return history_dir / "runs" / run_id / version


def record_version(history_dir: Path, record: dict, best_weights: Path) -> None:
    """Keep a finished version: its record, then its best weights (a record names a version once complete)."""
    folder = version_folder(history_dir, record["run_id"], record["version"])
    with atomic_path(folder / WEIGHTS) as tmp:
        shutil.copyfile(best_weights, tmp)
    write_json(folder / RECORD, record)


def record_evaluation(history_dir: Path, run_id: str, version: str, evaluation: dict) -> None:
    write_json(version_folder(history_dir, run_id, version) / EVALUATION, evaluation)


@dataclass(frozen=True)
class Version:
    """One finished version of a run, as the store holds it."""

    record: dict
    evaluation: dict | None  # None until it is evaluated
    folder: Path

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def version(self) -> str:
        return self.record["version"]

    @property
    def has_weights(self) -> bool:
        return (self.folder / WEIGHTS).is_file()


def load_versions(history_dir: Path) -> dict[str, dict[str, Version]]:
    """``{run id: {version: Version}}`` of every version with a complete record, oldest first per run."""
    found: dict[str, dict[str, Version]] = {}
    runs = history_dir / "runs"
    if not runs.is_dir():
        return found
    for run_folder in sorted(runs.iterdir()):
        for folder in sorted(run_folder.iterdir()):  # version ids sort by the time they finished
            try:
                record = json.loads((folder / RECORD).read_bytes())
            except (OSError, ValueError):
                continue  # being written, or not a version
            try:
                evaluation = json.loads((folder / EVALUATION).read_bytes())
            except (OSError, ValueError):
                evaluation = None
            found.setdefault(run_folder.name, {})[folder.name] = Version(record, evaluation, folder)
    return found


def current_version(run_dir: Path) -> str | None:
    """The version a run's folder holds now (its run_config.json says), or None."""
    try:
        return read_json(RunFiles.of(run_dir).run_config).get("version")
    except (OSError, ValueError):
        return None
