"""What each run records about itself: run_info.json, TensorBoard, MLflow and W&B."""

from __future__ import annotations

import copy
import json
import multiprocessing
import signal
import subprocess
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import REPO, copy_workflow, edit_config, job_env, snakemake, train_command
from conftest import STUDY_RUN_IDS as RUN_IDS
from mlpipe.config import check_config, load_schema
from mlpipe.io import read_yaml
from mlpipe.tracking.provenance import scheduler_job
from mlpipe.training.signals import EXIT_CHECKPOINTED


def lock_sha256() -> str:
    """The lock's checksum as the README says to compute it."""
    result = subprocess.run("cat requirements/*.txt | sha256sum", shell=True, cwd=REPO, capture_output=True, text=True)
    return result.stdout.split()[0]


def test_every_run_records_its_status_provenance_and_resource_use(finished_workflow):
    for run_id in RUN_IDS:
        info = json.loads((finished_workflow / "results" / "runs" / run_id / "run_info.json").read_text())
        assert info["status"] == "finished" and info["attempts"] == 1
        assert info["start_time"] <= info["end_time"]
        provenance = info["provenance"]
        assert provenance["torch"] and provenance["snakemake"] and provenance["python"] and provenance["host"]
        assert provenance["device"] == "cpu" and provenance["slurm_job_id"] is None
        assert provenance["lock_sha256"] == lock_sha256()
        usage = info["usage"]
        assert usage["epochs_done"] == 3 and usage["wall_seconds"] > usage["train_seconds"] > 0
        assert usage["images_per_second"] > 0 and usage["peak_host_memory_mb"] > 50


def git(directory, *args: str) -> str:
    command = ["git", "-C", str(directory), "-c", "user.name=mlpipe", "-c", "user.email=mlpipe@example.org", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_provenance_records_the_clones_commit_and_whether_its_tracked_files_changed(tmp_path):
    origin = copy_workflow(tmp_path / "origin")
    edit_config(origin, {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]}})
    git(origin, "init", "--quiet")
    git(origin, "add", "--all")
    git(origin, "commit", "--quiet", "--message", "a study")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(origin), str(clone))
    commit = git(clone, "rev-parse", "HEAD")

    snakemake(clone, "--cores", "2")
    clean = pd.read_csv(clone / "results" / "provenance.csv").set_index("run_id")
    assert clean.loc["lr-0.05_seed-0", "git_commit"] == commit and clean.loc["lr-0.05_seed-0", "git_dirty"] == 0
    assert clean.loc["lr-0.05_seed-0", "lock_sha256"] == lock_sha256()

    edit_config(clone, {"sweep": {"seeds": [0, 1]}})  # a tracked file changed, not committed: the new run is dirty
    snakemake(clone, "--cores", "2")
    edited = pd.read_csv(clone / "results" / "provenance.csv").set_index("run_id")
    assert edited["git_commit"].to_dict() == {"lr-0.05_seed-0": commit, "lr-0.05_seed-1": commit}
    assert edited["git_dirty"].to_dict() == {"lr-0.05_seed-0": 0, "lr-0.05_seed-1": 1}


def test_tensorboard_reads_every_runs_scalars(finished_workflow):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(finished_workflow / "results" / "runs" / RUN_IDS[0] / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "throughput/images_per_second"} <= tags
    metrics = pd.read_csv(finished_workflow / "results" / "runs" / RUN_IDS[0] / "metrics.csv")
    val_acc = events.Scalars("val/acc")
    assert [event.step for event in val_acc] == [1, 2, 3]
    assert [event.value for event in val_acc] == pytest.approx(metrics["val_acc"].tolist(), rel=1e-6)


def log_to_mlflow_together(store_uri: str, index: int, barrier) -> None:
    """One training job's MLflow logging, started at the same moment as the others'."""
    import mlflow  # noqa: F401  (imported before the barrier: the jobs then really start together)

    from mlpipe.tracking.loggers import MlflowLogger

    barrier.wait()
    logger = MlflowLogger({"tracking_uri": store_uri, "experiment": "study"})
    logger.start(f"run-{index}", {"lr": 0.1}, SimpleNamespace(info={"trackers": {}}))
    logger.epoch({"epoch": 1, "val_acc": 0.5})
    logger.end("finished")


def test_jobs_starting_together_log_to_one_mlflow_experiment(tmp_path, monkeypatch):
    context, count = multiprocessing.get_context("spawn"), 6
    barrier, uri = context.Barrier(count), (tmp_path / "mlruns").as_uri()
    jobs = [context.Process(target=log_to_mlflow_together, args=(uri, index, barrier)) for index in range(count)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(300)
    assert [job.exitcode for job in jobs] == [0] * count
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["study"])
    assert sorted(runs["tags.mlflow.runName"]) == [f"run-{index}" for index in range(count)]


def test_runs_are_also_logged_to_mlflow_and_wandb_offline(tmp_path, monkeypatch):
    workdir = copy_workflow(tmp_path / "project")
    edit_config(
        workdir,
        {
            "train": {"epochs": 2},
            "sweep": {"grid": {"lr": [0.05]}, "seeds": [0, 1]},
            "tracking": {"mlflow": {"enabled": True}, "wandb": {"enabled": True}},
        },
    )
    snakemake(workdir, "--cores", "2")
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading the file store, as `mlflow ui` would
    mlflow.set_tracking_uri((workdir / "results" / "mlruns").as_uri())
    runs = mlflow.search_runs(experiment_names=["project"])
    assert sorted(runs["tags.mlflow.runName"]) == ["lr-0.05_seed-0", "lr-0.05_seed-1"]
    assert (runs["status"] == "FINISHED").all() and (runs["params.lr"] == "0.05").all()
    history = mlflow.MlflowClient().get_metric_history(runs["run_id"].iloc[0], "val_acc")
    assert [point.step for point in history] == [1, 2]
    for run_id in ("lr-0.05_seed-0", "lr-0.05_seed-1"):
        offline = list((workdir / "results" / "runs" / run_id / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(offline) == 1 and offline[0].stat().st_size > 0


def test_a_run_records_the_slurm_job_as_sacct_shows_it_and_the_modules_it_loaded():
    environ = {"SLURM_JOB_ID": "13", "SLURM_JOB_PARTITION": "gpu", "LOADEDMODULES": "python/3.12"}
    assert scheduler_job(environ) == {"slurm_job_id": "13", "slurm_partition": "gpu", "modules": "python/3.12"}
    array_task = environ | {"SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "1"}  # its own SLURM_JOB_ID is 13
    assert scheduler_job(array_task)["slurm_job_id"] == "12_1"
    assert scheduler_job({}) == {"slurm_job_id": None, "slurm_partition": None, "modules": None}


def one_run(**train: object) -> dict:
    """The hyperparameters of one run of config/config.yaml with ``train`` changed, as the train job gets them."""
    config = copy.deepcopy(read_yaml(REPO / "config" / "config.yaml"))
    config["train"].update(train)
    config["sweep"] = {"grid": {}, "seeds": [0]}
    runs = check_config(config, load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return next(iter(runs.values()))


def train_until(run_dir, processed, params: dict, env: dict, stop_after: str | None = None) -> int:
    """scripts/train.py as the train rule runs it; with ``stop_after``, SIGUSR1 (SLURM's walltime warning) as soon
    as that text is logged. Returns the exit code."""
    command = train_command(run_dir, processed, json.dumps(params), "--threads", "1")
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = []
    for line in process.stderr:
        log.append(line)
        if stop_after and stop_after in line:
            time.sleep(0.2)  # into the next epoch
            process.send_signal(signal.SIGUSR1)
            stop_after = None
    code = process.wait(300)
    assert code in (0, EXIT_CHECKPOINTED), "".join(log)
    return code


def test_a_resumed_run_continues_the_same_mlflow_and_wandb_runs(processed_digits, tmp_path, monkeypatch):
    tracking = {
        "tensorboard": False,
        "mlflow": {"enabled": True, "tracking_uri": (tmp_path / "mlruns").as_uri(), "experiment": "study"},
        "wandb": {"enabled": True, "project": "study", "mode": "offline"},
    }
    env = job_env() | {"MLPIPE_TRACKING": json.dumps(tracking)}
    run_dir, params = tmp_path / "run", one_run(epochs=3, batch_size=8)
    assert train_until(run_dir, processed_digits, params, env, stop_after="epoch 1/3") == EXIT_CHECKPOINTED
    assert train_until(run_dir, processed_digits, params, env) == 0
    info = json.loads((run_dir / "out" / "run_info.json").read_text())
    assert info["status"] == "finished" and info["attempts"] == 2

    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(tracking["mlflow"]["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=["study"])
    assert runs["run_id"].tolist() == [info["trackers"]["mlflow_run_id"]] and runs["status"].tolist() == ["FINISHED"]
    history = mlflow.MlflowClient().get_metric_history(runs["run_id"].iloc[0], "val_acc")
    assert sorted(point.step for point in history) == [1, 2, 3]  # epoch 1 from the first attempt, 2 and 3 after

    # W&B offline writes one folder per attempt, offline-run-<time>-<run id>: both attempts are the same W&B run.
    attempts = sorted((run_dir / "out" / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2
    assert {folder.name.rsplit("-", 1)[1] for folder in attempts} == {info["trackers"]["wandb_run_id"]}
