"""Entry points: one line for errors mlpipe raises on purpose, a traceback first for surprises; and the environment,
read by the entry points rather than the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, job_env
from dataset_files import SPLIT_SETTINGS
from mlpipe.io import write_json


def test_entry_points_end_with_one_line_for_mlpipe_errors_and_a_traceback_for_surprises(tmp_path):
    def preprocess(raw_dir: Path) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            str(REPO / "scripts" / "preprocess.py"),
            "--dataset",
            json.dumps(SPLIT_SETTINGS),
            "--raw-dir",
            str(raw_dir),
            "--processed-dir",
            str(tmp_path / "out"),
        ]
        return subprocess.run(command, env=job_env(), capture_output=True, text=True)

    # Raised on purpose by mlpipe: one line.
    (tmp_path / "odd").mkdir()
    write_json(tmp_path / "odd" / "manifest.json", {"dataset": "x", "format": "hdf5", "classes": ["a"], "splits": {}})
    ours = preprocess(tmp_path / "odd")
    assert ours.returncode == 1 and "Traceback" not in ours.stderr
    assert (
        ours.stderr.strip().splitlines()[-1]
        == f"error: ValueError: {tmp_path / 'odd'}/manifest.json: unknown raw format 'hdf5'"
    )
    # Raised inside the standard library: the traceback comes first, the same kind of line last.
    surprise = preprocess(tmp_path / "missing")
    assert surprise.returncode == 1 and "Traceback" in surprise.stderr
    assert surprise.stderr.strip().splitlines()[-1].startswith("error: FileNotFoundError: ")


def environment_readers() -> set[str]:
    """The modules of the package that read os.environ or os.getenv (setting a default is not reading)."""
    import ast

    readers = set()
    for path in (REPO / "src" / "mlpipe").rglob("*.py"):
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
                used_as = parents.get(node)
                setting = isinstance(used_as, ast.Attribute) and used_as.attr == "setdefault"
                if node.attr == "getenv" or (node.attr == "environ" and not setting):
                    readers.add(path.relative_to(REPO / "src" / "mlpipe").as_posix())
    return readers


def test_the_package_reads_the_environment_only_where_contributing_says():
    # Scripts (and the workflow) read the environment and hand the package what it needs.
    assert environment_readers() == {"device.py", "cluster/slurm_plugins.py"}
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    assert "the package reads none itself, but `device.py` for its error message and `cluster/slurm_plugins.py`" in (
        contributing
    )
