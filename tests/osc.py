"""What the OSC profile's tests share: a user's environment on OSC (or on the local SLURM cluster) and Snakemake run
in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conftest import job_env

if TYPE_CHECKING:
    from local_slurm import LocalSlurm

ACCOUNT = "pas0001"


def osc_env(cluster: LocalSlurm | None, scratch: Path, **overrides: str) -> dict:
    """A user's environment on the local cluster, whose placeholder GPU neither CUDA nor the torch check can see."""
    env = job_env() | {
        "OSC_ACCOUNT": ACCOUNT,
        "OSC_SCRATCH": str(scratch),
        "MLPIPE_ALLOW_CPU": "1",
        "MLPIPE_SKIP_TORCH_CHECK": "1",
    }
    if cluster is not None:
        env["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(workdir: Path, env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
