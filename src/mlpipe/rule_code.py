"""The source files each workflow rule runs, declared as rule inputs.

Snakemake reruns a job when an input is newer than its outputs, but it does not see the
Python modules a script imports. Listing them here, per rule, gives the rerun behaviour
users expect: editing training code retrains every run (and everything after it) without
touching download or preprocess; editing plotting code reruns only the plots.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
SHARED = ["__init__.py", "io.py", "layout.py", "cli.py"]  # used by every stage

RULE_CODE = {
    "download": ["download", "formats"],
    "preprocess": ["preprocess", "formats"],
    "train": ["models", "training", "tracking"],
    "evaluate": ["evaluate", "models", "training"],
    "summarize": [
        "analysis/__init__.py",
        "analysis/collect.py",
        "analysis/stats.py",
        "analysis/html.py",
        "analysis/summary.py",
    ],
    "registry": ["analysis/__init__.py", "analysis/collect.py", "analysis/html.py", "analysis/registry.py"],
    "plot": ["analysis/__init__.py", "analysis/stats.py", "analysis/plots.py"],
    "archive": ["study/__init__.py", "study/status.py", "study/archive.py", "tracking/run_record.py"],
    "clean_checkpoints": ["study/__init__.py", "study/status.py", "study/cleanup.py", "tracking/run_record.py"],
}


def rule_code(rule: str) -> list[str]:
    """Sorted paths of the package sources that ``rule`` depends on, relative to the working directory if inside it."""
    files: set[Path] = set()
    for entry in [*SHARED, *RULE_CODE[rule]]:
        path = PACKAGE_DIR / entry
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(_display_path(path) for path in files)


def _display_path(path: Path) -> str:
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
