"""Pack a finished study into one archive with a manifest of checksums.

In: the results folder's tables, plots, report, registry and logs, of each run its metrics,
configs, evaluation, TensorBoard events and best checkpoint, and the history: every version's record and
evaluation, the passes, the tags, and the weights of tagged versions. Out: the raw and processed data and
the resumable checkpoints, which can be made again. ``MANIFEST.sha256`` inside the archive checks
with ``sha256sum -c MANIFEST.sha256`` after unpacking.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from pathlib import Path

import yaml

from mlpipe.history.passes import archived_history
from mlpipe.io import atomic_path
from mlpipe.layout import HISTORY_DIR_NAME, SITE_RECORD_NAME, RunFiles
from mlpipe.study.status import unfinished

log = logging.getLogger(__name__)

# Of each run's folder (mlpipe.layout.RunFiles); last.pt and the W&B folder stay out.
RUN_FILES = ("metrics", "run_config", "run_info", "evaluation", "confusion", "best")
RUN_FOLDERS = ("tensorboard",)
TOP_FILES = (
    "summary.csv",
    "comparison.csv",
    "comparison_baseline.csv",
    "resources.csv",
    "cost.csv",
    "provenance.csv",
    "excluded_runs.csv",
    "best_config.yaml",
    "registry.sqlite",
    "report.html",
    SITE_RECORD_NAME,
)
TOP_FOLDERS = ("plots", "logs")
MANIFEST = "MANIFEST.sha256"


class StudyInProgressError(RuntimeError):
    """Some runs of the study are not finished."""


def study_files(results_dir: Path, run_ids: list[str]) -> list[Path]:
    files = [results_dir / name for name in TOP_FILES if (results_dir / name).is_file()]
    for folder in TOP_FOLDERS:
        files += sorted(path for path in (results_dir / folder).rglob("*") if path.is_file())
    for run_id in run_ids:
        run = RunFiles.of(results_dir / "runs" / run_id)
        files += [getattr(run, kind) for kind in RUN_FILES if getattr(run, kind).is_file()]
        for kind in RUN_FOLDERS:
            files += sorted(path for path in getattr(run, kind).rglob("*") if path.is_file())
    return files + archived_history(results_dir / HISTORY_DIR_NAME)


def archive_study(results_dir: Path, run_ids: list[str], config: dict, destination: Path) -> Path:
    """Write ``destination`` (a .tar.gz) atomically; refuse while any run is unfinished."""
    pending = unfinished(results_dir / "runs", run_ids)
    if pending:
        listed = ", ".join(f"{run_id} ({status})" for run_id, status in sorted(pending.items()))
        raise StudyInProgressError(f"not archiving: {len(pending)} run(s) are not finished: {listed}")
    if not (results_dir / "report.html").is_file():
        log.warning(
            "no report.html in %s: make it first with `snakemake --report %s/report.html`", results_dir, results_dir
        )
    prefix = destination.name.removesuffix(".tar.gz")
    digests = []
    with atomic_path(destination) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in study_files(results_dir, run_ids):
            name = path.relative_to(results_dir).as_posix()
            digests.append(f"{_sha256(path)}  {name}")
            tar.add(path, arcname=f"{prefix}/{name}")
        resolved = yaml.safe_dump(config, sort_keys=False).encode()
        _add_bytes(tar, f"{prefix}/config.resolved.yaml", resolved)
        digests.append(f"{hashlib.sha256(resolved).hexdigest()}  config.resolved.yaml")
        _add_bytes(tar, f"{prefix}/{MANIFEST}", ("\n".join(digests) + "\n").encode())
    log.info("archived %d files of %d runs to %s", len(digests), len(run_ids), destination)
    return destination


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
