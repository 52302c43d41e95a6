"""Free scratch space: remove the resumable checkpoints of finished runs.

A run's folder under ``checkpoint_root`` (``resume.pt``, ``best.pt``) is only needed to resume;
once the run is finished its results folder holds the best and last weights. Runs that are
running, interrupted, failed or unknown keep their checkpoints.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mlpipe.layout import RunFiles
from mlpipe.study.status import unfinished

log = logging.getLogger(__name__)


def clean_checkpoints(checkpoint_root: Path, runs_dir: Path, run_ids: list[str]) -> dict[str, list[str]]:
    """Remove the checkpoint folders of finished runs; return what was removed and what was kept."""
    pending = unfinished(runs_dir, run_ids)
    removed, kept = [], []
    for run_id in run_ids:
        folder = checkpoint_root / run_id
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
