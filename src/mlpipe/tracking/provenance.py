"""Which code, packages, machine and scheduler job produced a run."""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

# The lock `make setup` installs from: every package pinned with its hashes (see README, Development).
LOCK_FILES = "requirements/*.txt"


def git_state(directory: Path) -> dict:
    """Commit of the checkout and whether its tracked files differ from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status)}


def lock_checksum(directory: Path) -> str | None:
    """sha256 of the checkout's lock files in name order, as `cat requirements/*.txt | sha256sum` (None: no lock)."""
    files = sorted(directory.glob(LOCK_FILES))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_provenance(code_dir: Path, device: str, scheduler_job: Mapping[str, str | None]) -> dict:
    """Code, packages, machine and ``scheduler_job`` (from :func:`scheduler_job`) of a run."""
    return {
        **git_state(code_dir),
        "lock_sha256": lock_checksum(code_dir),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "snakemake": package_version("snakemake"),
        "host": socket.gethostname(),
        **scheduler_job,
        "device": device,
    }


def scheduler_job(environ: Mapping[str, str]) -> dict:
    """The SLURM job a process runs in (None outside SLURM; a task of a job array as ``<array job>_<task>``,
    the id squeue and sacct show) and the environment modules loaded into it (Lmod's and Environment
    Modules' ``$LOADEDMODULES``; None without modules)."""
    job_id = environ.get("SLURM_JOB_ID")
    if environ.get("SLURM_ARRAY_JOB_ID") and environ.get("SLURM_ARRAY_TASK_ID"):
        job_id = f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    return {
        "slurm_job_id": job_id,
        "slurm_partition": environ.get("SLURM_JOB_PARTITION"),
        "modules": environ.get("LOADEDMODULES") or None,
    }


def scheduler_request(
    threads: int, mem_mb: int | None, gpus: int, runtime_minutes: int | None, environ: Mapping[str, str]
) -> dict:
    """What a SLURM job asked for (its cores from SLURM itself); empty for a local run, which has no allocation."""
    if not environ.get("SLURM_JOB_ID"):
        return {}
    cpus = int(environ.get("SLURM_CPUS_PER_TASK", threads))
    return {"cpus": cpus, "mem_mb": mem_mb, "gpus": gpus, "runtime_minutes": runtime_minutes}
