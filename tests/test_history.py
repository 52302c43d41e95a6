"""mlpipe.history: every pass of the lab's loop kept, tags, and whether an edit helped (real Snakemake passes)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from conftest import STUDY_RUN_IDS as RUN_IDS
from conftest import copy_workflow, edit_config, planned_jobs, private_copy, snakemake
from mlpipe.analysis.stats import difference_of_means

CONFIGURATIONS = {"lr=0.05": RUN_IDS[:2], "lr=0.1": RUN_IDS[2:]}


def test_the_difference_of_means_is_welchs():
    now, before = pd.Series([0.91, 0.93, 0.96]), pd.Series([0.85, 0.88])
    result = difference_of_means(now, before)
    var_now, var_before = now.var() / 3, before.var() / 2
    freedom = (var_now + var_before) ** 2 / (var_now**2 / 2 + var_before**2 / 1)
    half = stats.t.ppf(0.975, freedom) * math.sqrt(var_now + var_before)
    assert result["diff"] == pytest.approx(now.mean() - before.mean())
    assert (result["diff_ci95_low"], result["diff_ci95_high"]) == pytest.approx(
        (result["diff"] - half, result["diff"] + half)
    )
    assert result["p_value"] == pytest.approx(stats.ttest_ind(now, before, equal_var=False).pvalue)
    single = difference_of_means(pd.Series([0.9]), before)
    assert math.isnan(single["p_value"]) and math.isnan(single["diff_ci95_low"])


def pass_files(workdir: Path) -> dict[str, dict]:
    """What each run's folder says now: its hyperparameters, best validation accuracy and test accuracy."""
    found = {}
    for run_id in RUN_IDS:
        run_config = json.loads((workdir / "results" / "runs" / run_id / "run_config.json").read_text())
        evaluation = json.loads((workdir / "results" / "runs" / run_id / "evaluation.json").read_text())
        found[run_id] = run_config | {"test_accuracy": evaluation["test_accuracy"]}
    return found


def tag(workdir: Path, name: str, check: bool = True) -> subprocess.CompletedProcess:
    """`make tag NAME=...`, in its snakemake form."""
    return snakemake(workdir, "--cores", "1", "tag", "--config", f"tag={name}", check=check)


@pytest.fixture(scope="module")
def two_passes(finished_workflow, tmp_path_factory):
    """The default study, tagged `baseline`, then the lab's edit (train.weight_decay) and a rerun."""
    workdir = private_copy(finished_workflow, tmp_path_factory.mktemp("history"))
    first = pass_files(workdir)
    tag(workdir, "baseline")
    edit_config(workdir, {"train": {"weight_decay": 0.002}})
    snakemake(workdir, "--cores", "2")
    return workdir, first, pass_files(workdir)


def test_a_retrained_run_keeps_its_earlier_version(two_passes):
    workdir, first, second = two_passes
    registry = sqlite3.connect(workdir / "results" / "registry.sqlite")
    versions = registry.execute("SELECT run_id, version, current, hparams, best_val_acc, test_acc FROM versions")
    by_version = {(row[0], row[1]): row for row in versions.fetchall()}
    assert len(by_version) == 8  # 4 runs, 2 versions each
    for run_id in RUN_IDS:
        old, new = first[run_id], second[run_id]
        assert old["version"] != new["version"]
        for found, current in ((old, 0), (new, 1)):
            row = by_version[(run_id, found["version"])]
            assert row[2] == current and json.loads(row[3]) == found["hparams"]
            assert (row[4], row[5]) == (found["best_val_acc"], found["test_accuracy"])
            folder = workdir / "results" / "history" / "runs" / run_id / found["version"]
            assert (folder / "best.pt").stat().st_size > 0
            record = json.loads((folder / "record.json").read_text())
            assert record["provenance"]["lock_sha256"] and "git_dirty" in record["provenance"]
            assert record["data"]["checksum"] and "src/mlpipe/training/loop.py" in record["code"]
        epochs = registry.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (run_id,)).fetchone()
        assert epochs == (2 * 3 * 8,)  # both versions: 3 epochs x 8 metrics each (7 and the data wait)
    passes = registry.execute("SELECT number FROM passes ORDER BY number").fetchall()
    assert passes == [(1,), (2,)]
    assert planned_jobs(workdir) == {}  # keeping the history reruns nothing


def test_the_comparison_is_what_the_two_passes_files_give(two_passes):
    workdir, first, second = two_passes
    table = pd.read_csv(workdir / "results" / "comparison_baseline.csv").set_index("configuration")
    assert set(table.index) == set(CONFIGURATIONS) and (table["status"] == "compared").all()
    for label, run_ids in CONFIGURATIONS.items():
        row = table.loc[label]
        for column, key in (("val_acc", "best_val_acc"), ("test_acc", "test_accuracy")):
            now = pd.Series([second[run_id][key] for run_id in run_ids])
            before = pd.Series([first[run_id][key] for run_id in run_ids])
            assert row[f"{column}_current_mean"] == pytest.approx(now.mean())
            assert row[f"{column}_baseline_mean"] == pytest.approx(before.mean())
            half = stats.t.ppf(0.975, 1) * now.std() / math.sqrt(2)
            assert row[f"{column}_current_ci95_low"] == pytest.approx(max(now.mean() - half, 0.0))
            expected = difference_of_means(now, before)
            assert row[f"{column}_diff"] == pytest.approx(expected["diff"])
            for name in ("diff_ci95_low", "diff_ci95_high", "p_value"):
                if math.isnan(expected[name]):
                    assert math.isnan(row[f"{column}_{name}"])
                else:
                    assert row[f"{column}_{name}"] == pytest.approx(expected[name])
            if not math.isnan(expected["p_value"]):
                assert expected["p_value"] == pytest.approx(stats.ttest_ind(now, before, equal_var=False).pvalue)
        assert row["changed"] == "weight_decay 0.0005 -> 0.002"
    assert (workdir / "results" / "plots" / "before_after.png").read_bytes()[:4] == b"\x89PNG"


def test_the_terminal_shows_passes_tags_and_the_comparison(two_passes):
    workdir, _, second = two_passes
    result = subprocess.run(
        [sys.executable, "scripts/history.py"], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    passes, tags, title, comparison = result.stdout.split("\n\n")
    assert passes.splitlines()[0].startswith("Passes") and len(passes.splitlines()) == 4  # title, header, 2 passes
    assert tags.splitlines()[0] == "Tags:" and tags.splitlines()[2].split()[0] == "baseline"
    assert title == "Current pass against the previous version of each run:"
    for label in CONFIGURATIONS:
        assert label in comparison and "weight_decay 0.0005 -> 0.002" in comparison
    best = max(
        CONFIGURATIONS,
        key=lambda label: sum(second[run_id]["best_val_acc"] for run_id in CONFIGURATIONS[label]),
    )
    assert best in passes.splitlines()[-1]


def test_a_tag_name_is_used_once_and_only_for_a_study_that_is_done(two_passes, tmp_path):
    workdir = private_copy(two_passes[0], tmp_path)
    again = tag(workdir, "baseline", check=False)
    assert again.returncode != 0
    assert "error: TagError: tag: 'baseline' already names the pass of " in again.stderr + again.stdout
    edit_config(workdir, {"sweep": {"seeds": [0, 1, 2]}})  # two runs not trained yet
    refused = tag(workdir, "more-seeds", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "2 run(s) of the study are not done: lr-0.05_seed-2 (not trained)" in said
    edit_config(workdir, {"sweep": {"seeds": [0, 1]}, "train": {"weight_decay": 0.003}})  # settings not run yet
    assert "its settings changed since it trained" in "".join(tag(workdir, "stale", check=False).stderr.splitlines())
    assert sorted(path.name for path in (workdir / "results" / "history" / "tags").iterdir()) == ["baseline.json"]


def test_comparing_with_a_tag_reruns_only_the_comparison(two_passes, tmp_path):
    workdir = private_copy(two_passes[0], tmp_path)
    previous = pd.read_csv(workdir / "results" / "comparison_baseline.csv")
    edit_config(workdir, {"compare": {"baseline": "baseline"}})
    assert planned_jobs(workdir) == {"compare": 1, "all": 1}
    snakemake(workdir, "--cores", "1")
    # The tag names the first pass, which is also the previous version of every run: the same numbers.
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "results" / "comparison_baseline.csv"), previous)
    edit_config(workdir, {"compare": {"baseline": "nonesuch"}})
    refused = snakemake(workdir, "-n", check=False)
    assert (
        refused.stderr.strip().splitlines()[-1] == "config error: compare.baseline: no tag 'nonesuch'; tags: baseline"
    )


def test_untagged_weights_go_when_only_tagged_ones_are_kept(two_passes, tmp_path):
    workdir = private_copy(two_passes[0], tmp_path)
    history = workdir / "results" / "history" / "runs"
    assert len(list(history.glob("*/*/best.pt"))) == 8
    edit_config(workdir, {"history": {"keep_weights": "tagged"}})
    snakemake(workdir, "--cores", "1")  # the registry job prunes; the tagged first pass and the current keep theirs
    assert len(list(history.glob("*/*/best.pt"))) == 8
    shutil.rmtree(workdir / "results" / "history" / "tags")
    snakemake(workdir, "--cores", "1", "--forcerun", "registry")
    assert len(list(history.glob("*/*/best.pt"))) == 4  # the current versions'
    assert len(list(history.glob("*/*/record.json"))) == 8  # every version is still recorded


def test_a_tag_survives_the_archive(two_passes, tmp_path):
    workdir = private_copy(two_passes[0], tmp_path)
    snakemake(workdir, "--cores", "1", "archive", "--config", f"archive={{destination: {tmp_path}, name: study}}")
    with tarfile.open(tmp_path / "study.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    unpacked = tmp_path / "unpacked" / "study"
    baseline = json.loads((unpacked / "history" / "tags" / "baseline.json").read_text())
    assert baseline["runs"] == {run_id: found["version"] for run_id, found in two_passes[1].items()}
    for run_id, version in baseline["runs"].items():
        assert (unpacked / "history" / "runs" / run_id / version / "best.pt").is_file()
    registry = sqlite3.connect(unpacked / "registry.sqlite")
    assert registry.execute("SELECT name FROM tags").fetchall() == [("baseline",)]
    assert registry.execute("SELECT COUNT(*) FROM tag_runs").fetchone() == (4,)
    check = subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=unpacked, capture_output=True)
    assert check.returncode == 0, check.stdout


LAB_MODEL = """
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, in_channels, num_classes, width=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(width, num_classes)

    def forward(self, images):
        return self.head(self.body(images).flatten(1))
"""


def test_an_edit_of_a_lab_model_file_is_compared_and_named(tmp_path):
    workdir = copy_workflow(tmp_path / "lab")
    (workdir / "lab").mkdir()
    model = workdir / "lab" / "tiny.py"
    model.write_text(LAB_MODEL)
    edit_config(
        workdir,
        {"train": {"epochs": 2, "model": "lab/tiny.py:TinyCNN"}, "sweep": {"grid": {"lr": [0.1]}, "seeds": [0, 1]}},
    )
    snakemake(workdir, "--cores", "2")
    model.write_text(LAB_MODEL.replace("width=8", "width=24"))
    snakemake(workdir, "--cores", "2")
    table = pd.read_csv(workdir / "results" / "comparison_baseline.csv")
    (row,) = table.to_dict("records")
    assert row["configuration"] == "lr=0.1" and row["status"] == "compared" and row["n_baseline"] == 2
    assert row["changed"] == "code: lab/tiny.py"
    runs = workdir / "results" / "history" / "runs"
    assert {len(list(folder.iterdir())) for folder in runs.iterdir()} == {2}
