"""Free scratch space: remove the resumable checkpoints of finished runs.

A run's state folder (``resume.pt``, ``best.pt``) is only needed to resume; once the run is finished
its results folder holds the best and last weights. The folder is the one the run recorded in its
``run_info.json`` (so it is found on scratch whichever way the command is typed), else
``<checkpoint_root>/<run id>``. Runs that are running, interrupted, failed or unknown keep theirs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mlpipe.io import read_json
from mlpipe.layout import RunFiles
from mlpipe.study.status import unfinished

log = logging.getLogger(__name__)


def state_folder(checkpoint_root: Path, runs_dir: Path, run_id: str) -> Path:
    """Where the run keeps its resumable state: as recorded by the run, else under ``checkpoint_root``."""
    info_file = RunFiles.of(runs_dir / run_id).run_info
    recorded = read_json(info_file).get("state_dir") if info_file.is_file() else None
    # A recorded folder is only trusted if it is this run's (named after it): never delete what a
    # hand-edited record points at.
    if recorded and Path(recorded).name == run_id:
        return Path(recorded)
    return checkpoint_root / run_id


def clean_checkpoints(checkpoint_root: Path, runs_dir: Path, run_ids: list[str]) -> dict[str, list[str]]:
    """Remove the state folders of finished runs; return what was removed and what was kept."""
    pending = unfinished(runs_dir, run_ids)
    removed, kept = [], []
    for run_id in run_ids:
        folder = state_folder(checkpoint_root, runs_dir, run_id)
        if not folder.exists():
            continue
        if run_id in pending or not RunFiles.of(runs_dir / run_id).best.exists():
            kept.append(run_id)
            log.info("keeping %s: run %s is %s", folder, run_id, pending.get(run_id, "missing its best.pt"))
            continue
        freed = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        shutil.rmtree(folder)
        removed.append(run_id)
        log.info("removed %s (%.1f MB)", folder, freed / 1e6)
    return {"removed": removed, "kept": kept}
