"""What the benchmarks share: a fresh copy of the workflow to time, the environment of a user running it, and the
line that says when and on what a figure was measured."""

from __future__ import annotations

import datetime
import os
import platform
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


def measured_on() -> str:
    """When and on what machine: the first line every benchmark prints, as the README quotes its figures."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        models = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"measured {now} on {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"
