"""End-to-end: the real workflow run by real Snakemake in a temp copy, and what reruns after edits."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import STUDY_RUN_IDS as RUN_IDS
from conftest import copy_workflow, edit_config, planned_jobs, private_copy, snakemake

ANALYSIS = {"summarize": 1, "registry": 1, "plot": 1, "compare": 1, "all": 1}


RETRAIN_ALL = {"train": 4, "evaluate": 4, **ANALYSIS}


def test_full_run_produces_every_output(finished_workflow):
    results = finished_workflow / "results"
    summary = pd.read_csv(results / "summary.csv")
    assert list(summary["run_id"]) == RUN_IDS
    assert list(summary.columns) == [
        "run_id",
        "lr",
        "seed",
        "best_val_acc",
        "best_val_loss",
        "best_epoch",
        "test_acc",
        "train_seconds",
        "images_per_second",
    ]
    assert summary["lr"].tolist() == [0.05, 0.05, 0.1, 0.1] and summary["seed"].tolist() == [0, 1, 0, 1]
    assert summary["test_acc"].between(0.5, 1.0).all()  # 3 epochs on digits: far above the 10% of chance
    for run_id in RUN_IDS:
        run_dir = results / "runs" / run_id
        metrics = pd.read_csv(run_dir / "metrics.csv")
        assert metrics["epoch"].tolist() == [1, 2, 3]
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"} <= set(metrics.columns)
        run_config = json.loads((run_dir / "run_config.json").read_text())
        assert run_config["hparams"]["lr"] == summary.set_index("run_id").loc[run_id, "lr"]
        assert run_config["hparams"]["epochs"] == 3
        evaluation = json.loads((run_dir / "evaluation.json").read_text())
        assert len(evaluation["per_class"]) == 10
        assert evaluation["test_accuracy"] == summary.set_index("run_id").loc[run_id, "test_acc"]
        confusion = pd.read_csv(run_dir / "confusion.csv", index_col="true_class")
        assert confusion.to_numpy().sum() == evaluation["test_count"]
        assert (run_dir / "best.pt").stat().st_size > 0 and (run_dir / "last.pt").stat().st_size > 0
    for plot in ("learning_curves", "test_accuracy", "confusion_best", "time_and_throughput"):
        assert (results / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for table in (
        "comparison.csv",
        "resources.csv",
        "provenance.csv",
        "excluded_runs.csv",
        "best_config.yaml",
        "registry.sqlite",
    ):
        assert (results / table).exists(), table
    processed = finished_workflow / "data" / "processed" / "digits"
    meta = json.loads((processed / "meta.json").read_text())
    assert sum(meta["counts"].values()) == 1797
    leftovers = [path for path in finished_workflow.rglob("*.tmp*") if ".snakemake" not in path.parts]
    assert leftovers == []


def test_nothing_to_do_after_a_complete_run(finished_copy):
    assert planned_jobs(finished_copy) == {}
    # What the README says of --list-changes params: Snakemake 9 lists one output of every job, nothing having
    # changed (14 jobs: download, preprocess, 4 train, 4 evaluate, summarize, registry, plot, compare).
    listed = snakemake(finished_copy, "--list-changes", "params").stdout.split()
    assert len(listed) == 14 and "results/runs/lr-0.05_seed-0/run_config.json" in listed


def test_editing_model_code_retrains_every_run_but_keeps_the_data(finished_copy):
    model_file = finished_copy / "src" / "mlpipe" / "models" / "small_cnn.py"
    model_file.write_text(model_file.read_text() + "\n# a change to the model\n")
    assert planned_jobs(finished_copy) == RETRAIN_ALL


def test_editing_training_code_retrains_every_run_and_the_dry_run_says_the_code_changed(finished_copy):
    schedule_file = finished_copy / "src" / "mlpipe" / "training" / "schedule.py"
    schedule_file.write_text(schedule_file.read_text() + "\n# a change to the schedule\n")
    assert planned_jobs(finished_copy) == RETRAIN_ALL
    # The README's commands: the rules and why, then each job's reason, naming the rule whose code changed.
    rules = snakemake(finished_copy, "-n", "--quiet", "rules").stdout
    assert "params have changed since last execution:\n        train\n" in rules
    assert "input files updated by another job:\n        all, compare, evaluate, plot, registry, summarize\n" in rules
    reasons = [line.strip() for line in snakemake(finished_copy, "-n").stdout.splitlines() if "reason:" in line]
    code_changed = re.compile(
        r"^reason: Params have changed since last execution: Union of exclusive params before and now across all "
        r"output: before: 'code of rule train: [0-9a-f]{16}' now: 'code of rule train: [0-9a-f]{16}'$"
    )
    assert sum(bool(code_changed.match(reason)) for reason in reasons) == 4


def test_editing_plotting_code_reruns_only_the_plots(finished_copy):
    plots_file = finished_copy / "src" / "mlpipe" / "analysis" / "plots.py"
    plots_file.write_text(plots_file.read_text() + "\n# a change to a plot\n")
    assert planned_jobs(finished_copy) == {"plot": 1, "compare": 1, "all": 1}


def test_editing_preprocess_code_reruns_preprocess_and_everything_after_it(finished_copy):
    split_file = finished_copy / "src" / "mlpipe" / "preprocess" / "split.py"
    split_file.write_text(split_file.read_text() + "\n# a change to the split\n")
    assert planned_jobs(finished_copy) == {"preprocess": 1, **RETRAIN_ALL}


def test_touching_code_or_checking_it_out_again_reruns_nothing(finished_copy):
    # A `git checkout` to another branch and back leaves the same content with new file times.
    later = time.time() + 60
    for path in [*(finished_copy / "src").rglob("*.py"), *(finished_copy / "scripts").glob("*.py")]:
        os.utime(path, (later, later))
    assert planned_jobs(finished_copy) == {}


def test_changing_a_sweep_value_trains_only_the_new_runs(finished_copy):
    edit_config(finished_copy, {"sweep": {"grid": {"lr": [0.05, 0.2]}}})
    assert planned_jobs(finished_copy) == {"train": 2, "evaluate": 2, **ANALYSIS}


def test_adding_a_sweep_value_or_seed_trains_only_the_new_runs(finished_copy):
    edit_config(finished_copy, {"sweep": {"grid": {"lr": [0.05, 0.1, 0.2]}, "seeds": [0, 1, 2]}})
    # Five new runs: lr 0.2 with seeds 0, 1 and 2, and the old learning rates with the new seed 2.
    assert planned_jobs(finished_copy) == {"train": 5, "evaluate": 5, **ANALYSIS}


def test_changing_a_base_hyperparameter_retrains_the_runs_it_reaches(finished_copy):
    edit_config(finished_copy, {"train": {"weight_decay": 0.001}})
    assert planned_jobs(finished_copy) == RETRAIN_ALL


def test_changing_a_swept_key_in_the_base_config_changes_nothing(finished_copy):
    # Every run overrides the base lr with its grid value, so no run's hyperparameters change.
    edit_config(finished_copy, {"train": {"lr": 0.5}})
    assert planned_jobs(finished_copy) == {}


def test_settings_that_do_not_change_results_rerun_nothing(finished_copy):
    edit_config(
        finished_copy,
        {
            "tracking": {"tensorboard": False, "wandb": {"enabled": True}},
            "train_job": {"stage_to_tmpdir": True, "runtime": 240, "mem_mb": 4000, "gpus": 2},
        },
    )
    assert planned_jobs(finished_copy) == {}


def test_changing_the_split_reruns_preprocess_but_not_download(finished_copy):
    edit_config(finished_copy, {"dataset": {"split_seed": 1}})
    assert planned_jobs(finished_copy) == {"preprocess": 1, **RETRAIN_ALL}


@pytest.mark.parametrize("fractions", [{"val_fraction": 0.2}, {"test_fraction": 0.1}])
def test_changing_a_split_fraction_reruns_preprocess_but_not_download(finished_copy, fractions):
    edit_config(finished_copy, {"dataset": fractions})
    assert planned_jobs(finished_copy) == {"preprocess": 1, **RETRAIN_ALL}


def test_fractions_the_data_cannot_take_stop_before_anything_is_deleted_or_run(finished_copy):
    processed = finished_copy / "data" / "processed" / "digits"
    before = {path.name: path.read_bytes() for path in processed.iterdir()}
    edit_config(finished_copy, {"dataset": {"val_fraction": 0.95, "test_fraction": 0.95}})
    result = snakemake(finished_copy, "--cores", "2", check=False)
    assert result.returncode != 0
    last_line = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last_line.startswith(
        "config error: dataset.val_fraction 0.95 and dataset.test_fraction 0.95 leave 7 of 10 classes without "
        "training images (class "
    )
    assert last_line.endswith("); lower them so that every class keeps some")
    assert {path.name: path.read_bytes() for path in processed.iterdir()} == before
    edit_config(finished_copy, {"dataset": {"val_fraction": 0.15, "test_fraction": 0.15}})  # the mistake undone
    assert planned_jobs(finished_copy) == {}


LAB_MODEL = """
from torch import nn

from layers import conv_block  # a file beside this one


class TinyCNN(nn.Module):
    def __init__(self, in_channels, num_classes, width=16):
        super().__init__()
        self.body = nn.Sequential(
            conv_block(in_channels, width), conv_block(width, width), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, images):
        return self.head(self.body(images))
"""
LAB_LAYERS = """
from torch import nn


def conv_block(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU())
"""
LAB_RUN_IDS = ["lr-0.05_model-small_cnn_seed-0", "lr-0.05_model-TinyCNN_seed-0"]


@pytest.fixture(scope="module")
def finished_with_a_lab_model(tmp_path_factory) -> Path:
    """The built-in data, a built-in model and a lab's own one (in lab/models/, importing a file beside it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("lab-model") / "workflow")
    (workdir / "lab" / "models").mkdir(parents=True)
    (workdir / "lab" / "models" / "tiny.py").write_text(LAB_MODEL)
    (workdir / "lab" / "models" / "layers.py").write_text(LAB_LAYERS)
    edit_config(
        workdir,
        {
            "train": {"epochs": 3},
            "sweep": {"grid": {"lr": [0.05], "model": ["small_cnn", "lab/models/tiny.py:TinyCNN"]}, "seeds": [0]},
        },
    )
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def lab_model_copy(finished_with_a_lab_model, tmp_path) -> Path:
    return private_copy(finished_with_a_lab_model, tmp_path)


def test_a_lab_model_trains_beside_a_builtin_one(finished_with_a_lab_model):
    summary = pd.read_csv(finished_with_a_lab_model / "results" / "summary.csv")
    assert summary["run_id"].tolist() == LAB_RUN_IDS
    assert summary["model"].tolist() == ["small_cnn", "lab/models/tiny.py:TinyCNN"]
    assert summary["test_acc"].min() > 0.3  # 3 epochs on digits: far above the 10% of chance


def test_editing_a_lab_model_file_retrains_only_the_runs_that_use_it(lab_model_copy):
    model = lab_model_copy / "lab" / "models" / "tiny.py"
    model.write_text(model.read_text().replace("width=16", "width=12"))
    assert planned_jobs(lab_model_copy) == {"train": 1, "evaluate": 1, **ANALYSIS}
    dry_run = snakemake(lab_model_copy, "-n").stdout
    assert "run=lr-0.05_model-TinyCNN_seed-0" in dry_run and "run=lr-0.05_model-small_cnn" not in dry_run
    assert "now: 'code of lab/models/tiny.py:TinyCNN: " in dry_run  # the reason names the lab's code


def test_editing_a_file_the_lab_model_imports_retrains_its_runs_too(lab_model_copy):
    layers = lab_model_copy / "lab" / "models" / "layers.py"
    layers.write_text(layers.read_text().replace("nn.ReLU()", "nn.GELU()"))
    assert planned_jobs(lab_model_copy) == {"train": 1, "evaluate": 1, **ANALYSIS}


def test_lint_reports_nothing(workflow_copy):
    result = snakemake(workflow_copy, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def planned_tmpdirs(workdir: Path, *args: str, env: dict) -> set[str]:
    """The temp folder of every job a dry run plans."""
    plan = snakemake(workdir, "-n", *args, env=env).stdout
    return {line.split("tmpdir=")[1].split(",")[0] for line in plan.splitlines() if "resources: " in line}


def test_local_jobs_get_the_temp_folder_snakemake_would_give_them(workflow_copy, tmp_path):
    own, named = tmp_path / "own-tmp", tmp_path / "named-tmp"
    own.mkdir()
    env = {"TMPDIR": str(own)}
    assert planned_tmpdirs(workflow_copy, env=env) == {str(own)}
    assert planned_tmpdirs(workflow_copy, "--default-resources", f"tmpdir='{named}'", env=env) == {str(named)}


@pytest.mark.parametrize("flag", ["--dag", "--rulegraph"])
@pytest.mark.parametrize("language, start", [("dot", "digraph"), ("mermaid-js", "---\ntitle: DAG\n---\nflowchart")])
def test_dag_can_be_drawn_before_anything_runs_with_graphviz_or_without(workflow_copy, flag, language, start):
    graph = snakemake(workflow_copy, flag, language).stdout
    assert graph.lstrip().startswith(start)
    for rule in ("download", "preprocess", "train", "evaluate", "summarize", "registry", "plot"):
        assert rule in graph
