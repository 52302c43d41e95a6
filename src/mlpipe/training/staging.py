"""Copy a processed dataset to the job's node-local $TMPDIR before training reads it.

On OSC every job has a $TMPDIR on the node's local disk: reading the arrays there instead of
from GPFS scratch keeps a sweep of many jobs from hammering the shared filesystem.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from mlpipe.io import atomic_path
from mlpipe.layout import processed_files

log = logging.getLogger(__name__)


def stage_processed(processed_dir: Path, environ=os.environ) -> Path:
    """Return a copy of ``processed_dir`` under $TMPDIR (made once per job), or ``processed_dir`` without one."""
    tmpdir = environ.get("TMPDIR")
    if not tmpdir:
        log.warning("stage_to_tmpdir: $TMPDIR is not set; reading %s in place", processed_dir)
        return processed_dir
    staged = Path(tmpdir) / "mlpipe-data" / processed_dir.name
    for source in processed_files(processed_dir):
        target = staged / source.name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
    log.info("staged %s to %s", processed_dir, staged)
    return staged
