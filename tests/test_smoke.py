"""mlpipe.smoke: the study in miniature (make smoke), in folders of its own, with a table of what passed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_workflow, edit_config, job_env

LAB_MODEL = """
from torch import nn


class Flat(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.head = nn.Linear(FEATURES, num_classes)

    def forward(self, images):
        return self.head(images.flatten(1))
"""
WORKING = LAB_MODEL.replace("FEATURES", "64")  # digits: 1 x 8 x 8
BROKEN = LAB_MODEL.replace("FEATURES", "in_channels")  # 1 feature: fails on the first batch


def smoke(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`make smoke`: python scripts/smoke.py --cores 2."""
    return subprocess.run(
        [sys.executable, "scripts/smoke.py", "--cores", "2", *args],
        cwd=workdir,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def table_rows(report: str) -> dict[tuple[str, str], str]:
    """{(rule, job): result} of the report's first table."""
    rows = {}
    for line in report.split("\n\n")[0].splitlines()[2:]:
        rule, job, result = line.split()[:3]
        rows[(rule, job)] = "not run" if result == "not" else result
    return rows


def failures(report: str) -> dict[str, str]:
    """{"rule (wildcards)": error line} of the report's list of failed jobs."""
    section = report.split("Why they failed:\n")[1].split("\n\n")[0]
    return dict(line.split(": ", 1) for line in section.splitlines())


@pytest.fixture(scope="module")
def smoked(tmp_path_factory):
    """A study of two models (a built-in and a lab's own) and two batch sizes, smoke-tested."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / "study")
    (workdir / "lab").mkdir()
    (workdir / "lab" / "tiny.py").write_text(WORKING)
    edit_config(
        workdir,
        {
            "train": {"epochs": 12},
            "sweep": {
                "grid": {"lr": [0.05], "model": ["small_cnn", "lab/tiny.py:Flat"], "batch_size": [32, 512]},
                "seeds": [3, 4],
            },
        },
    )
    return workdir, smoke(workdir)


def test_every_rule_and_model_runs_in_miniature_and_the_table_says_so(smoked):
    workdir, result = smoked
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = table_rows(result.stdout)
    expected = {"download", "preprocess", "train", "evaluate", "summarize", "registry", "plot", "compare", "smoke_step"}
    assert {rule for rule, _ in rows} == expected and set(rows.values()) == {"passed"}
    # The first run of each distinct model, one seed, one epoch, on a few hundred samples.
    assert {job for rule, job in rows if rule == "train"} == {
        "run=lr-0.05_model-small_cnn_batch_size-32_seed-3",
        "run=lr-0.05_model-Flat_batch_size-32_seed-3",
    }
    smoke_results = workdir / "results" / "smoke"
    for run in ("lr-0.05_model-small_cnn_batch_size-32_seed-3", "lr-0.05_model-Flat_batch_size-32_seed-3"):
        config = json.loads((smoke_results / "runs" / run / "run_config.json").read_text())
        assert config["hparams"]["epochs"] == 1 and config["dataset"]["counts"]["train"] <= 270
    assert result.stdout.strip().splitlines()[-1] == "all 12 jobs passed"
    assert (smoke_results / "smoke_report.txt").read_text().strip() == result.stdout.strip()


def test_one_step_of_each_model_at_the_studys_largest_batch(smoked):
    workdir, result = smoked
    steps = [json.loads(path.read_text()) for path in sorted((workdir / "results" / "smoke" / "smoke_steps").iterdir())]
    assert {step["model"] for step in steps} == {"small_cnn", "lab/tiny.py:Flat"}
    assert {step["batch_size"] for step in steps} == {512} and all(step["seconds_per_step"] > 0 for step in steps)
    section = result.stdout.split("\n\n")[1]
    assert re.search(r"^\s*small_cnn\s+512\s+cpu\s+fp32\s", section, re.M)
    assert "no GPU" in section  # this machine has none to set its memory against


def test_the_smoke_test_never_touches_the_study(smoked):
    workdir, _ = smoked
    assert sorted(path.name for path in (workdir / "results").iterdir()) == [".gitkeep", "smoke"]
    assert sorted(path.name for path in (workdir / "data").iterdir()) == ["checkpoints", "smoke"]
    assert sorted(path.name for path in (workdir / "data" / "checkpoints").iterdir()) == ["smoke"]


def test_a_failing_job_is_named_with_its_error_and_the_rest_still_run(tmp_path):
    workdir = copy_workflow(tmp_path / "study")
    (workdir / "lab").mkdir()
    (workdir / "lab" / "tiny.py").write_text(BROKEN)
    edit_config(workdir, {"sweep": {"grid": {"model": ["small_cnn", "lab/tiny.py:Flat"]}, "seeds": [0]}})
    result = smoke(workdir)
    assert result.returncode != 0
    rows = table_rows(result.stdout)
    assert rows[("train", "run=lr-0.05_model-Flat_seed-0")] == "FAILED"
    assert rows[("train", "run=lr-0.05_model-small_cnn_seed-0")] == "passed"
    assert rows[("evaluate", "run=lr-0.05_model-small_cnn_seed-0")] == "passed"
    assert rows[("evaluate", "-")] == "not run"  # the broken model's
    assert rows[("smoke_step", "probe=1")] == "FAILED"
    why = failures(result.stdout)
    assert why["train (run=lr-0.05_model-Flat_seed-0)"].startswith(
        "error: ModelMismatchError: train.model: lab/tiny.py:Flat cannot take this dataset's samples of shape (1, 8, 8)"
    )
    assert why["smoke_step (probe=1)"].startswith("error: RuntimeError: mat1 and mat2 shapes cannot be multiplied")
    assert re.search(r"^\d+ of \d+ jobs did not pass$", result.stdout, re.M)
