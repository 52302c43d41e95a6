"""The code each workflow rule runs, as a checksum the rule carries as a parameter.

Snakemake does not see the Python modules a script imports. Each rule therefore gets the checksum
of its script and of the package sources it runs as a parameter: when one of them changes, the
parameter changes and Snakemake reruns the rule's jobs and what depends on them. Editing training
code retrains every run (and everything after it) without touching download or preprocess; editing
plotting code reruns only the plots. The checksum is of the content, not of file times: a ``touch``
or a ``git checkout`` back and forth reruns nothing. A lab's own model and Dataset files get the same
treatment through :func:`mlpipe.user_sources.source_checksum` (per run for the model).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
SCRIPTS_DIR = PACKAGE_DIR.parents[1] / "scripts"
SHARED = ["__init__.py", "io.py", "layout.py", "cli.py"]  # used by every stage

RULE_CODE = {
    "download": ["download", "formats", "progress.py"],
    "preprocess": ["preprocess", "formats", "progress.py", "user_code.py", "user_sources.py"],
    "train": [
        "hparams.py",
        "models",
        "training",
        "tracking",
        "gpuwatch",
        "device.py",
        "torch_build.py",
        "processed.py",
        "inference.py",
        "user_code.py",
        "user_sources.py",
        "recovery/__init__.py",
        "recovery/run_lock.py",
        "history/__init__.py",
        "history/store.py",
        "history/versions.py",
    ],
    "evaluate": [
        "evaluate",
        "models",
        "device.py",
        "torch_build.py",
        "processed.py",
        "inference.py",
        "training/checkpoint.py",
        "user_code.py",
        "history/__init__.py",
        "history/store.py",
    ],
    "summarize": [
        "cluster/__init__.py",
        "cluster/accounting.py",
        "hparams.py",
        "analysis/__init__.py",
        "analysis/collect.py",
        "analysis/stats.py",
        "analysis/html.py",
        "analysis/gpu_use.py",
        "analysis/summary.py",
    ],
    "registry": [
        "analysis/__init__.py",
        "analysis/collect.py",
        "analysis/html.py",
        "analysis/registry.py",
        "history/__init__.py",
        "history/store.py",
        "history/passes.py",
        "tracking/run_record.py",
        "requests/__init__.py",
        "requests/profile.py",
        "cluster/__init__.py",
        "cluster/accounting.py",
    ],
    "compare": [
        "hparams.py",
        "analysis/__init__.py",
        "analysis/stats.py",
        "analysis/html.py",
        "analysis/plots.py",
        "analysis/gpu_use.py",
        "analysis/summary.py",
        "analysis/collect.py",
        "history/__init__.py",
        "history/store.py",
        "history/passes.py",
        "history/compare.py",
        "history/plot.py",
        "history/report.py",
        "tracking/run_record.py",
        "cluster/__init__.py",
        "cluster/accounting.py",
    ],
    "smoke_step": [
        "smoke/__init__.py",
        "smoke/step.py",
        "models",
        "training",
        "device.py",
        "torch_build.py",
        "processed.py",
        "user_code.py",
    ],
    "tag": [
        "hparams.py",
        "history",
        "analysis",
        "cluster/__init__.py",
        "cluster/accounting.py",
        "tracking/run_record.py",
        "user_code.py",
        "user_sources.py",
    ],
    "promote": ["search", "analysis", "cluster/__init__.py", "cluster/accounting.py", "hparams.py", "layout.py"],
    "ladder": ["search", "analysis", "cluster/__init__.py", "cluster/accounting.py", "hparams.py", "layout.py"],
    "plot": ["analysis/__init__.py", "analysis/stats.py", "analysis/plots.py"],
    "archive": [
        "study/__init__.py",
        "study/status.py",
        "study/archive.py",
        "tracking/run_record.py",
        "history/__init__.py",
        "history/store.py",
        "history/passes.py",
    ],
    "clean_checkpoints": ["study/__init__.py", "study/status.py", "study/cleanup.py", "tracking/run_record.py"],
}


def rule_sources(rule: str) -> list[Path]:
    """The rule's script and the package sources it runs, sorted."""
    files: set[Path] = {SCRIPTS_DIR / f"{rule}.py"}
    for entry in [*SHARED, *RULE_CODE[rule]]:
        path = PACKAGE_DIR / entry
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(files)


@functools.cache
def rule_code(rule: str) -> str:
    """The rule's code parameter: a short checksum of :func:`rule_sources`, changing exactly when one of them does,
    labelled with what it is a checksum of. Snakemake's rerun reason shows a changed parameter's old and new value
    (``before: 'code of rule train: 110c...' now: 'code of rule train: 95f7...'``), so the label says the code
    changed."""
    digest = hashlib.sha256()
    for path in rule_sources(rule):
        digest.update(path.relative_to(PACKAGE_DIR.parents[1]).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"code of rule {rule}: {digest.hexdigest()[:16]}"
