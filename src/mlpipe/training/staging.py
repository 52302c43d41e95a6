"""Copy a processed dataset to the job's node-local $TMPDIR before training reads it.

On OSC every job has a $TMPDIR on the node's local disk: reading the arrays there instead of
from GPFS scratch keeps a sweep of many jobs from hammering the shared filesystem. A copy left by
an earlier job (a $TMPDIR that outlives jobs) is reused only where its content is the same: the
checksums preprocess recorded in meta.json decide, not sizes or times (a new split keeps the sizes).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mlpipe.io import atomic_path, read_json
from mlpipe.layout import META_NAME, processed_files
from mlpipe.processed import load_meta

log = logging.getLogger(__name__)


def stage_processed(processed_dir: Path, tmpdir: str | None) -> Path:
    """Return a copy of ``processed_dir`` under ``tmpdir`` (the job's $TMPDIR), or ``processed_dir`` without one."""
    if not tmpdir:
        log.warning("stage_to_tmpdir: $TMPDIR is not set; reading %s in place", processed_dir)
        return processed_dir
    staged = Path(tmpdir) / "mlpipe-data" / processed_dir.name
    wanted = load_meta(processed_dir).get("checksums")
    present = _checksums(staged / META_NAME)
    *arrays, meta = processed_files(processed_dir)
    copied = 0
    for source in arrays:
        target = staged / source.name
        if wanted is None or not target.exists() or present.get(source.name) != wanted.get(source.name):
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            copied += 1
    with atomic_path(staged / META_NAME) as tmp:  # last: it vouches for the arrays beside it
        shutil.copyfile(meta, tmp)
    log.info("staged %s to %s (%d of %d arrays copied, the rest current)", processed_dir, staged, copied, len(arrays))
    return staged


def _checksums(meta_path: Path) -> dict:
    try:
        return read_json(meta_path).get("checksums") or {}
    except (OSError, ValueError):
        return {}
