"""Entry points: one line for errors mlpipe raises on purpose, a traceback first for surprises."""

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
