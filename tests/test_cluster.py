"""profiles/osc on a real SLURM cluster (slurmctld, slurmd, slurmdbd + MariaDB on 127.0.0.1).

The workflow runs with `snakemake --profile profiles/osc`, changed only through the environment
(account, scratch root, and MLPIPE_ALLOW_CPU because the cluster's GPU is a placeholder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import SMALL_CONFIG_OVERRIDES, copy_workflow, edit_config, job_env, snakemake, train_command
from local_slurm import LocalSlurm, missing_requirements, wait_until
from mlpipe.training.checkpoint import load_checkpoint

ACCOUNT = "pas0001"


# Only the plugin's first status check is brought forward (40 s by default) so the test takes minutes.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2")


SUBMITTED_RULES = {"download", "preprocess", "train", "evaluate"}  # summarize, plot and all are local rules


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = missing_requirements()
    if missing:
        if os.environ.get("MLPIPE_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM tests required but missing: {', '.join(missing)}")
        pytest.skip(f"needs a local SLURM cluster: missing {', '.join(missing)} (CI installs them)")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), accounts=(ACCOUNT,)).start()
    yield cluster
    cluster.stop()
    assert cluster.running_daemons() == [], "a SLURM daemon outlived the tests"


def osc_env(cluster: LocalSlurm | None, scratch: Path, **overrides: str) -> dict:
    """A user's environment on the local cluster, whose placeholder GPU neither CUDA nor the torch check can see."""
    env = job_env() | {
        "OSC_ACCOUNT": ACCOUNT,
        "OSC_SCRATCH": str(scratch),
        "MLPIPE_ALLOW_CPU": "1",
        "MLPIPE_SKIP_TORCH_CHECK": "1",
    }
    if cluster is not None:
        env["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(workdir: Path, env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def osc_workflow(tmp_path) -> Path:
    workdir = copy_workflow(tmp_path / "project")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES | {"train_job": {"gpus": 1, "runtime": 30, "mem_mb": 1500}})
    return workdir


def test_dry_run_shows_what_each_job_asks_of_osc(osc_workflow, tmp_path):
    result = run(osc_workflow, osc_env(None, tmp_path / "scratch"), "--profile", "profiles/osc", "-n")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "OSC pitzer (normal queue): CPU jobs on cpu, GPU jobs on gpu, account pas0001" in output
    train_jobs = [block for block in output.split("rule ")[1:] if block.startswith("train:")]
    assert len(train_jobs) == 2
    for block in train_jobs:
        assert "slurm_partition=gpu" in block and "gpu=1" in block and "slurm_account=pas0001" in block
        assert "runtime=30" in block and "mem_mb=1500" in block and "threads: 4" in block
        assert "--signal=USR1@300" in block
    preprocess = next(block for block in output.split("rule ")[1:] if block.startswith("preprocess:"))
    assert "slurm_partition=cpu" in preprocess and str(tmp_path / "scratch" / "data" / "processed") in preprocess
    assert "the sweep asks for at most 1 GPU-hours" in output


def test_debug_queue_moves_jobs_to_debug_partitions_with_the_one_hour_cap(osc_workflow, tmp_path):
    edit_config(osc_workflow, {"train_job": {"runtime": 300}})
    result = run(osc_workflow, osc_env(None, tmp_path, OSC_QUEUE="debug"), "--profile", "profiles/osc", "-n")
    assert result.returncode == 0, result.stderr
    assert "slurm_partition=gpudebug" in result.stdout and "slurm_partition=debug-cpu" in result.stdout
    assert "runtime=60," in result.stdout and "runtime=300" not in result.stdout


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"OSC_ACCOUNT": None},
            "config error: OSC_ACCOUNT is not set: export OSC_ACCOUNT=<your project, e.g. PAS1234>",
        ),
        ({"OSC_CLUSTER": "owens"}, "config error: OSC_CLUSTER=owens: Owens was retired in February 2025"),
        (
            {"OSC_CLUSTER": "summit"},
            "config error: OSC_CLUSTER=summit: unknown cluster; allowed: pitzer, ascend, cardinal",
        ),
        (
            {"OSC_GPU_PARTITION": "cpu"},
            "config error: OSC_GPU_PARTITION=cpu: the train rule asks for GPUs but pitzer partition 'cpu' has none",
        ),
        ({"OSC_QUEUE": "debug", "OSC_CLUSTER": "cardinal"}, "config error: OSC_QUEUE=debug: no such queue on cardinal"),
    ],
)
def test_impossible_settings_stop_the_dry_run_with_one_line(osc_workflow, tmp_path, overrides, message):
    result = run(osc_workflow, osc_env(None, tmp_path, **overrides), "--profile", "profiles/osc", "-n")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


ARCH_LIST = torch.cuda.get_arch_list()


@pytest.mark.skipif(
    "sm_70" in ARCH_LIST or "sm_90" not in ARCH_LIST, reason="needs PyPI's CUDA 13 build (no Volta, Hopper kernels)"
)
def test_the_dry_run_refuses_a_torch_without_kernels_for_the_clusters_gpus(osc_workflow, tmp_path):
    # This machine's torch is PyPI's CUDA 13 build: no kernel for Pitzer's V100s, kernels for Ascend and Cardinal.
    env = osc_env(None, tmp_path, MLPIPE_SKIP_TORCH_CHECK=None, XDG_CACHE_HOME=str(tmp_path / "cache"))
    refused = run(osc_workflow, env, "--profile", "profiles/osc", "-n")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"config error: OSC pitzer's V100 GPUs (compute capability 7.0) have no kernel in the installed torch "
        f"{torch.__version__} (built for {' '.join(ARCH_LIST)}): "
        "install PyTorch's CUDA 12.6 build: make setup TORCH_BUILD=cu126"
    )
    for cluster in ("ascend", "cardinal"):
        accepted = run(osc_workflow, env | {"OSC_CLUSTER": cluster}, "--profile", "profiles/osc", "-n")
        assert accepted.returncode == 0, accepted.stderr
    edit_config(osc_workflow, {"train_job": {"gpus": 0}})  # a sweep on CPUs needs no GPU kernel
    assert run(osc_workflow, env, "--profile", "profiles/osc", "-n").returncode == 0


def rule_of(comment: str) -> str:
    """The plugin's job comment is rule_<name>[_wildcards_<...>]."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@dataclass
class SlurmStudy:
    workdir: Path
    scratch: Path
    jobs: list[dict]  # the sacct rows of the jobs it submitted

    def by_rule(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for job in self.jobs:
            grouped.setdefault(rule_of(job["Comment"]), []).append(job)
        return grouped


@pytest.fixture(scope="module")
def slurm_study(slurm, tmp_path_factory) -> SlurmStudy:
    """The workflow run once through SLURM with profiles/osc; its scratch data is shared with later tests."""
    root = tmp_path_factory.mktemp("slurm-study")
    workdir = copy_workflow(root / "project")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES | {"train_job": {"gpus": 1, "runtime": 30, "mem_mb": 1500}})
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    result = run(workdir, osc_env(slurm, root / "scratch"), "--profile", "profiles/osc", *FAST_STATUS)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    fields = ("JobID", "Partition", "Account", "State", "AllocTRES", "Comment")
    return SlurmStudy(workdir, root / "scratch", [job for job in slurm.sacct(*fields) if job["JobID"] not in before])


def test_every_non_local_job_went_through_slurm_where_it_should(slurm_study):
    by_rule = slurm_study.by_rule()
    assert {rule: len(found) for rule, found in by_rule.items()} == {
        "download": 1,
        "preprocess": 1,
        "train": 2,
        "evaluate": 2,
    }
    assert set(by_rule) == SUBMITTED_RULES
    for job in slurm_study.jobs:
        assert job["State"] == "COMPLETED" and job["Account"] == ACCOUNT
        uses_gpu = "gres/gpu=1" in job["AllocTRES"]
        assert uses_gpu == (rule_of(job["Comment"]) == "train")
        assert job["Partition"] == ("gpu" if uses_gpu else "cpu")


def test_data_and_checkpoints_on_scratch_results_and_logs_in_the_project(slurm_study):
    scratch, workdir = slurm_study.scratch, slurm_study.workdir
    assert (scratch / "data" / "processed" / "digits" / "meta.json").exists()
    checkpoints = sorted(path.name for path in (scratch / "data" / "checkpoints").iterdir())
    assert checkpoints == ["lr-0.05_seed-0", "lr-0.1_seed-0"]
    assert not (workdir / "data").exists()
    assert len(list((workdir / "logs" / "slurm" / "rule_train").rglob("*.log"))) == 2


def test_each_run_recorded_its_job_and_what_it_asked_for(slurm_study):
    resources = pd.read_csv(slurm_study.workdir / "results" / "resources.csv")
    assert (resources["partition"] == "gpu").all() and (resources["gpus"] == 1).all() and (resources["cpus"] == 4).all()
    assert (resources["runtime_asked_min"] == 30).all() and (resources["mem_asked_mb"] == 1500).all()
    assert resources["oversized"].str.contains("walltime").all()  # seconds of training in a 30-minute request
    provenance = pd.read_csv(slurm_study.workdir / "results" / "provenance.csv", dtype={"slurm_job_id": str})
    assert set(provenance["slurm_job_id"]) == {job["JobID"] for job in slurm_study.by_rule()["train"]}


def test_results_match_a_local_run(slurm_study, tmp_path):
    # The same config run locally, with as many threads per training job, gives the same numbers.
    local = copy_workflow(tmp_path / "local")
    shutil.copy(slurm_study.workdir / "config" / "config.yaml", local / "config" / "config.yaml")
    snakemake(local, "--cores", "2", "--set-threads", "train=4")
    columns = ["run_id", "lr", "seed", "best_val_acc", "best_epoch", "test_acc"]
    slurm_summary = pd.read_csv(slurm_study.workdir / "results" / "summary.csv")[columns]
    local_summary = pd.read_csv(local / "results" / "summary.csv")[columns]
    pd.testing.assert_frame_equal(slurm_summary, local_summary)


def with_own_checkpoints(workdir: Path, overrides: dict) -> None:
    """Configure a workflow copy that shares the study's scratch (its data is there: only training runs) but
    keeps resumable state of its own."""
    edit_config(workdir, overrides | {"checkpoint_root": str(workdir / "checkpoints")})


def test_training_as_a_job_array_and_a_gpu_job_that_sees_no_gpu(slurm, slurm_study, osc_workflow):
    with_own_checkpoints(osc_workflow, {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0, 1]}})
    env = osc_env(slurm, slurm_study.scratch)
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    # Large sweeps: every train job ready at once goes in one sbatch, as tasks of a job array.
    result = run(
        osc_workflow, env, "--profile", "profiles/osc", "--slurm-array-jobs=train", "--until", "train", *FAST_STATUS
    )
    assert result.returncode == 0, result.stderr[-5000:]
    train = [
        job
        for job in slurm.sacct("JobID", "State", "Partition", "AllocTRES", "Comment")
        if job["JobID"] not in before and rule_of(job["Comment"]) == "train"
    ]
    assert len(train) == 2 and len({job["JobID"].split("_")[0] for job in train}) == 1  # tasks of one array
    assert all("_" in job["JobID"] and job["State"] == "COMPLETED" for job in train)
    assert all(job["Partition"] == "gpu" and "gres/gpu=1" in job["AllocTRES"] for job in train)

    # Without MLPIPE_ALLOW_CPU, a job that asked for a GPU and sees none (the placeholder) stops at once.
    env.pop("MLPIPE_ALLOW_CPU")
    result = run(
        osc_workflow,
        env,
        "--profile",
        "profiles/osc",
        "--forcerun",
        "train",
        "--until",
        "train",
        "--retries",
        "0",
        *FAST_STATUS,
    )  # one failure is the whole story here
    assert result.returncode != 0
    log = (osc_workflow / "results" / "logs" / "train" / "lr-0.05_seed-0.log").read_text()
    assert log.strip().splitlines()[-1] == (
        "error: NoGpuError: this job asked for 1 GPU(s) but CUDA sees none (CUDA_VISIBLE_DEVICES=0); "
        "set MLPIPE_ALLOW_CPU=1 to train on the CPU instead"
    )
    assert "epoch 1/" not in log
    failed = [
        job
        for job in slurm.sacct("JobID", "State", "ElapsedRaw", "Comment")
        if rule_of(job["Comment"]) == "train" and job["State"] == "FAILED"
    ]
    assert failed and all(int(job["ElapsedRaw"]) < 60 for job in failed)


def test_a_wrong_account_fails_cleanly_before_anything_runs(slurm, osc_workflow, tmp_path):
    before = len(slurm.sacct("JobID"))
    result = run(
        osc_workflow,
        osc_env(slurm, tmp_path / "scratch", OSC_ACCOUNT="pas9999"),
        "--profile",
        "profiles/osc",
        *FAST_STATUS,
        timeout=300,
    )
    assert result.returncode != 0
    assert "pas9999" in result.stderr and "invalid" in result.stderr.lower()
    assert len(slurm.sacct("JobID")) == before
    assert not (osc_workflow / "results" / "summary.csv").exists()


def test_sigusr1_before_walltime_checkpoints_and_the_retry_resumes(slurm, slurm_study, osc_workflow, tmp_path):
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 10, "batch_size": 8}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]}},
    )
    run_id = "lr-0.05_seed-0"
    train_log = osc_workflow / "results" / "logs" / "train" / f"{run_id}.log"
    workflow = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/osc", *FAST_STATUS],
        cwd=osc_workflow,
        env=osc_env(slurm, slurm_study.scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: train_log.exists() and "epoch 2/10" in train_log.read_text(), 300, "the second epoch")
        train_job = next(job["JobID"] for job in slurm.queue() if rule_of(job["Comment"]) == "train")
        # What SLURM does at --signal=USR1@300: signal every process of the job's steps.
        subprocess.run(["scancel", "--signal=USR1", train_job], env=slurm.env, check=True)
        output, _ = workflow.communicate(timeout=600)
    finally:
        workflow.kill()
    assert workflow.returncode == 0, output[-5000:]
    train_jobs = [job for job in slurm.sacct("JobID", "State", "Comment") if rule_of(job["Comment"]) == "train"]
    assert [job["State"] for job in train_jobs][-2:] == ["FAILED", "COMPLETED"]
    log = train_log.read_text()  # the retry's log
    assert f"resuming {run_id} at epoch" in log and "epoch 10/10" in log
    resumed_at = int(log.split(f"resuming {run_id} at epoch ")[1].split(",")[0])
    assert resumed_at >= 3  # epochs 1 and 2 were done before the signal, and not trained again

    # Resumed on the other side of a SLURM retry, the run ends bit-identical to an uninterrupted one:
    # the same hyperparameters on the same processed data, trained here in one go with the same threads.
    run_config = json.loads((osc_workflow / "results" / "runs" / run_id / "run_config.json").read_text())
    reference = tmp_path / "uninterrupted" / run_id
    command = train_command(
        reference,
        slurm_study.scratch / "data" / "processed" / "digits",
        json.dumps(run_config["hparams"]),
        "--threads",
        str(run_config["torch_threads"]),
    )
    subprocess.run(command, env=job_env(), check=True, capture_output=True)
    resumed = load_checkpoint(osc_workflow / "results" / "runs" / run_id / "last.pt")["state_dict"]
    uninterrupted = load_checkpoint(reference / "out" / "last.pt")["state_dict"]
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in uninterrupted)
