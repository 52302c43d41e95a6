"""What the benchmarks share: a fresh copy of the workflow to time, and the environment of a user running it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles", "scripts", "src", "envs", "examples"]


def copy_workflow(destination: Path) -> Path:
    """The workflow's files (no results, data or caches) in ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def user_environment(**extra: str) -> dict:
    """The environment of a user with this venv activated (``python`` and ``snakemake`` are its own)."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra)
