"""The worked example, examples/vehicle_sensors: a lab's own Dataset and model written in the lab guide's style,
run through the real workflow with its own config file: trained well above chance, and after an edit to the
lab's files only what the edit touches runs again."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, planned_jobs, private_copy, snakemake

CONFIG = "examples/vehicle_sensors/config.yaml"
RUN_IDS = [  # the example's grid replaces config/config.yaml's grid whole: lr is not swept
    "model_args.width-16_seed-0",
    "model_args.width-16_seed-1",
    "model_args.width-32_seed-0",
    "model_args.width-32_seed-1",
]
MANOEUVRES = ["cruise", "accelerate", "brake", "turn_left", "turn_right", "lane_change"]
RETRAIN_ALL = {"train": 4, "evaluate": 4, "summarize": 1, "registry": 1, "plot": 1, "compare": 1, "all": 1}


@pytest.fixture(scope="module")
def finished_example(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("example") / "workflow")
    snakemake(workdir, "--cores", "2", "--configfile", CONFIG)
    return workdir


@pytest.fixture
def example_copy(finished_example, tmp_path) -> Path:
    return private_copy(finished_example, tmp_path)


def test_the_example_classifies_sensor_windows_well_above_chance(finished_example):
    results = finished_example / "results" / "vehicle_sensors"
    summary = pd.read_csv(results / "summary.csv")
    assert summary["run_id"].tolist() == RUN_IDS
    assert summary["model_args.width"].tolist() == [16, 16, 32, 32]
    assert summary["test_acc"].min() >= 0.9  # chance is 1 in 6; the README states what the runs reach
    processed = finished_example / "data" / "vehicle_sensors" / "processed" / "custom"
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["shape"] == [6, 128] and meta["dtype"] == "float32" and meta["classes"] == MANOEUVRES
    assert meta["counts"] == {"train": 2040, "val": 360, "test": 600}  # the Dataset's own test split, kept
    for run_id in RUN_IDS:
        evaluation = json.loads((results / "runs" / run_id / "evaluation.json").read_text())
        assert [row["class"] for row in evaluation["per_class"]] == MANOEUVRES
        run_config = json.loads((results / "runs" / run_id / "run_config.json").read_text())
        assert run_config["hparams"]["model"] == "examples/vehicle_sensors/src/models/model.py:MyModel"
    for plot in ("learning_curves", "test_accuracy", "confusion_best", "time_and_throughput"):
        assert (results / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "model_args.width:\n    - " in (results / "best_config.yaml").read_text()
    assert not (finished_example / "results" / "summary.csv").exists()  # the default study's tables are untouched


def test_nothing_to_do_after_the_example_ran(example_copy):
    assert planned_jobs(example_copy, "--configfile", CONFIG) == {}


def test_editing_the_labs_model_file_retrains_its_runs_but_keeps_the_data(example_copy):
    model = example_copy / "examples" / "vehicle_sensors" / "src" / "models" / "model.py"
    model.write_text(model.read_text().replace("kernel_size=7", "kernel_size=9"))
    assert planned_jobs(example_copy, "--configfile", CONFIG) == RETRAIN_ALL


def test_editing_the_labs_dataset_file_reruns_preprocess_and_what_follows_but_not_download(example_copy):
    dataset = example_copy / "examples" / "vehicle_sensors" / "src" / "data" / "dataset.py"
    dataset.write_text(dataset.read_text().replace("rng.uniform(0.05, 0.6)", "rng.uniform(0.05, 0.8)"))
    assert planned_jobs(example_copy, "--configfile", CONFIG) == {"preprocess": 1, **RETRAIN_ALL}


def test_changing_the_datasets_arguments_reruns_preprocess_but_not_download(example_copy):
    config = example_copy / "examples" / "vehicle_sensors" / "config.yaml"
    config.write_text(config.read_text().replace("num_windows: 2400", "num_windows: 3000"))
    assert planned_jobs(example_copy, "--configfile", CONFIG) == {"preprocess": 1, **RETRAIN_ALL}


def test_the_examples_best_config_reproduces_its_study_with_the_command_it_prints(example_copy):
    best_config = example_copy / "results" / "vehicle_sensors" / "best_config.yaml"
    text = best_config.read_text()
    command = next(line.strip("# ") for line in text.splitlines() if line.startswith("#     snakemake "))
    assert command == "snakemake --cores 2 --configfile results/vehicle_sensors/best_config.yaml"
    config = yaml.safe_load(text)
    assert config["dataset"]["name"] == "custom" and config["results_dir"] == "results/vehicle_sensors"
    assert config["sweep"]["grid"] == {"model_args.width": [config["train"]["model_args"]["width"]]}
    # On top of config/config.yaml (digits, results/): the example's data, model and folders, its runs reused.
    words = command.split()[1:]
    assert planned_jobs(example_copy, *words) == {"summarize": 1, "registry": 1, "plot": 1, "compare": 1, "all": 1}
    plan = snakemake(example_copy, "-n", *words).stdout
    assert "results/vehicle_sensors/summary.csv" in plan and "results/summary.csv" not in plan
