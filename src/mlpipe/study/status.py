"""Which runs are finished, from their own run_info.json."""

from __future__ import annotations

from pathlib import Path

from mlpipe.io import read_json
from mlpipe.layout import RunFiles
from mlpipe.tracking.run_record import FINISHED


def run_status(run_dir: Path) -> str:
    """A run's status; ``unknown`` when it never started here or its record is unreadable."""
    try:
        return read_json(RunFiles.of(run_dir).run_info).get("status", "unknown")
    except (OSError, ValueError):
        return "unknown"


def unfinished(runs_dir: Path, run_ids: list[str]) -> dict[str, str]:
    """``{run_id: status}`` of every run that is not finished (running, interrupted, failed, unknown)."""
    statuses = {run_id: run_status(runs_dir / run_id) for run_id in run_ids}
    return {run_id: status for run_id, status in statuses.items() if status != FINISHED}
