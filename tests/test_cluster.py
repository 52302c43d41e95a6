"""mlpipe.cluster and profiles/osc on a real SLURM cluster (slurmctld, slurmd, slurmdbd + MariaDB on 127.0.0.1, see
local_slurm.py). Dry runs without a cluster are in test_osc_profile.py.

The workflow runs with `snakemake --profile profiles/osc`, changed only through the environment
(account, scratch root, and MLPIPE_ALLOW_CPU because the cluster's GPUs are placeholders).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from osc import ACCOUNT, osc_env, run

from conftest import SMALL_CONFIG_OVERRIDES, copy_workflow, edit_config, snakemake
from local_slurm import LMOD_INIT, LocalSlurm, missing_requirements, wait_until

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
    # Any --config on the command line (here one that changes nothing) used to drop the OSC mapping.
    result = run(
        workdir,
        osc_env(slurm, root / "scratch"),
        "--profile",
        "profiles/osc",
        "--config",
        "results_dir=results",
        *FAST_STATUS,
    )
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


def test_archive_and_clean_up_typed_with_or_without_the_profile_act_on_the_study(slurm, slurm_study, tmp_path):
    workdir, scratch = slurm_study.workdir, slurm_study.scratch
    jobs_before = len(slurm.sacct("JobID"))
    # With the profile, as the study ran: the archive is made on the login node, nothing is submitted.
    destination = f"archive={{destination: {tmp_path / 'profiled'}, name: study}}"
    profiled = run(workdir, osc_env(slurm, scratch), "--profile", "profiles/osc", "archive", "--config", destination)
    assert profiled.returncode == 0, profiled.stderr[-3000:]
    with tarfile.open(tmp_path / "profiled" / "study.tar.gz") as tar:
        assert "study/site.json" in tar.getnames()
    # A later shell on the login node: no profile, no OSC_* variables. The study's record of its site
    # (results/site.json) gives these commands the scratch paths the study ran with.
    env = osc_env(slurm, scratch, OSC_ACCOUNT=None, OSC_SCRATCH=None)
    # `make archive DEST=...`: the report, then the archive
    assert run(workdir, env, "--report", "results/report.html").returncode == 0
    archived = run(
        workdir, env, "--cores", "1", "archive", "--config", f"archive={{destination: {tmp_path}, name: study}}"
    )
    assert archived.returncode == 0, archived.stderr[-3000:]
    with tarfile.open(tmp_path / "study.tar.gz") as tar:
        assert {"study/report.html", "study/site.json"} <= set(tar.getnames())
    said = archived.stdout + archived.stderr
    assert "localrule archive:" in said and "localrule train:" not in said
    cleaned = run(workdir, env, "--cores", "1", "clean_checkpoints")
    assert cleaned.returncode == 0, cleaned.stderr[-3000:]
    assert list((scratch / "data" / "checkpoints").iterdir()) == []
    assert len(slurm.sacct("JobID")) == jobs_before  # nothing went to SLURM

    # A command that would train without the profile is refused with one line, before anything runs.
    (workdir / "more_seeds.yaml").write_text("sweep: {grid: {lr: [0.05, 0.1]}, seeds: [0, 1]}\n")
    refused = run(workdir, env, "--cores", "2", "--configfile", "more_seeds.yaml")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1] == (
        "config error: results/site.json says this study runs on OSC pitzer (--profile profiles/osc), and this "
        "command would run its evaluate, train jobs here: add --profile profiles/osc"
    )
    assert not (workdir / "results" / "runs" / "lr-0.05_seed-1").exists()


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


def start_training(workdir: Path, env: dict) -> subprocess.Popen:
    """`snakemake --profile profiles/osc --until train` in the background, for a test to act on its jobs meanwhile."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/osc", "--until", "train", *FAST_STATUS],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def with_own_checkpoints(workdir: Path, overrides: dict) -> None:
    """Configure a workflow copy that shares the study's scratch (its data is there: only training runs) but
    keeps resumable state of its own."""
    edit_config(workdir, overrides | {"checkpoint_root": str(workdir / "checkpoints")})


def test_training_as_a_job_array_and_a_gpu_job_that_sees_no_gpu(slurm, slurm_study, osc_workflow):
    # The first rung of a halving search (2 configurations x 2 seeds, 1 then 2 epochs) is one array. (The train
    # jobs of a sweep are arrays too: the 100-run sweep's test.)
    halving = {"grid": {"lr": [0.05, 0.1]}, "seeds": [0, 1], "halving": {"eta": 2, "min_epochs": 1}}
    with_own_checkpoints(osc_workflow, {"train": {"epochs": 2}, "sweep": halving})
    env = osc_env(slurm, slurm_study.scratch)
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    # profiles/osc submits the train jobs that are ready together in one sbatch, as tasks of a job array.
    result = run(osc_workflow, env, "--profile", "profiles/osc", "--until", "train_rung", *FAST_STATUS)
    assert result.returncode == 0, result.stderr[-5000:]
    jobs = slurm.sacct("JobID", "State", "Partition", "AllocTRES", "Comment")
    rung = [job for job in jobs if job["JobID"] not in before and rule_of(job["Comment"]) == "train_rung"]
    assert len(rung) == 4 and len({job["JobID"].split("_")[0] for job in rung}) == 1  # tasks of one array
    assert all("_" in job["JobID"] and job["State"] == "COMPLETED" for job in rung)
    assert all(job["Partition"] == "gpu" and "gres/gpu=1" in job["AllocTRES"] for job in rung)
    records = sorted(path.stem for path in (osc_workflow / "results" / "halving" / "rung-1").glob("*.json"))
    assert records == ["lr-0.05_seed-0", "lr-0.05_seed-1", "lr-0.1_seed-0", "lr-0.1_seed-1"]

    # Without MLPIPE_ALLOW_CPU, a job that asked for a GPU and sees none (the placeholder) stops at once.
    env.pop("MLPIPE_ALLOW_CPU")
    result = run(
        osc_workflow,
        env,
        "--profile",
        "profiles/osc",
        "--forcerun",
        "train_rung",
        "--until",
        "train_rung",
        "--retries",
        "0",
        *FAST_STATUS,
    )  # one failure is the whole story here
    assert result.returncode != 0
    log = (osc_workflow / "results" / "logs" / "train_rung" / "rung-1" / "lr-0.05_seed-0.log").read_text()
    assert log.strip().splitlines()[-1] == (  # the placeholder GPUs hand a job no device (local_slurm.py)
        "error: NoGpuError: this job asked for 1 GPU(s) but CUDA sees none (CUDA_VISIBLE_DEVICES=); "
        "set MLPIPE_ALLOW_CPU=1 to train on the CPU instead"
    )
    assert "epoch 1/" not in log
    failed = [
        job
        for job in slurm.sacct("JobID", "State", "ElapsedRaw", "Comment")
        if rule_of(job["Comment"]) == "train_rung" and job["State"] == "FAILED"
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


def attempts_of(slurm: LocalSlurm, rule: str, before: set[str], workdir: Path) -> list[dict]:
    """The sacct rows of the jobs of ``rule`` that the study in ``workdir`` submitted since ``before``, in order: one
    per attempt. (A job an earlier test cancelled may reach the accounting database only after ``before`` was read.)"""
    fields = ("JobID", "State", "ElapsedRaw", "TimelimitRaw", "ReqMem", "NNodes", "AllocTRES", "Comment", "WorkDir")
    return [
        job
        for job in slurm.sacct(*fields)
        if job["JobID"] not in before and rule_of(job["Comment"]) == rule and job["WorkDir"] == str(workdir)
    ]


def resumed_at(log: str, run_id: str) -> tuple[int, int] | None:
    """(epoch, step) of the trainer's "resuming <run> at epoch E, step S" line, if it has one."""
    found = re.search(rf"resuming {re.escape(run_id)} at epoch (\d+), step (\d+)", log)
    return (int(found[1]), int(found[2])) if found else None


def test_walltime_signal_and_scancel_each_checkpoint_and_the_retry_resumes(slurm, slurm_study, osc_workflow):
    # A 2-minute walltime with the warning 60 s before it: SLURM itself sends SIGUSR1 30-60 s into the job
    # (it checks every 30 s and may signal up to 30 s early). The run is far too long to end first, however
    # fast the machine; and without periodic checkpoints a resume can only start from a state saved on a signal.
    with_own_checkpoints(
        osc_workflow,
        {
            "train": {"epochs": 1000, "batch_size": 8, "checkpoint_every": 1000},
            "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]},
            "train_job": {"runtime": 2, "mem_mb": 1000, "signal_before_walltime": 60},
        },
    )
    run_id = "lr-0.05_seed-0"
    train_log = osc_workflow / "results" / "logs" / "train" / f"{run_id}.log"  # each attempt writes it anew
    run_info = osc_workflow / "results" / "runs" / run_id / "run_info.json"

    def resumed_other_than(earlier):
        return lambda: train_log.exists() and resumed_at(train_log.read_text(), run_id) not in (None, earlier)

    def attempts_recorded() -> int:
        return json.loads(run_info.read_text())["attempts"] if run_info.exists() else 0

    before = {job["JobID"] for job in slurm.sacct("JobID")}
    workflow = start_training(osc_workflow, osc_env(slurm, slurm_study.scratch))
    try:
        # The second attempt resumes from what the first saved on SLURM's signal ...
        wait_until(resumed_other_than(None), 400, "the second attempt to resume")
        first_resume = resumed_at(train_log.read_text(), run_id)
        wait_until(lambda: re.search(r"epoch \d+/1000 ", train_log.read_text()), 300, "an epoch after resuming")
        # ... then `scancel` (SIGTERM to every process of the job, as on preemption) stops it too, and the
        # third attempt resumes from what the second saved.
        second_attempt = next(job["JobID"] for job in slurm.queue() if rule_of(job["Comment"]) == "train")
        subprocess.run(["scancel", second_attempt], env=slurm.env, check=True)
        wait_until(resumed_other_than(first_resume), 400, "the third attempt to resume")
        second_resume = resumed_at(train_log.read_text(), run_id)
        # The trainer logs "resuming" a moment before it counts the attempt in run_info.json.
        wait_until(lambda: attempts_recorded() >= 3, 120, "run_info.json to count the third attempt")
        attempts_counted = attempts_recorded()
    finally:
        workflow.send_signal(signal.SIGINT)  # Snakemake cancels the third attempt and ends
        try:
            workflow.wait(120)
        finally:
            workflow.kill()
    assert first_resume > (1, 0) and second_resume > first_resume and attempts_counted == 3

    attempts = attempts_of(slurm, "train", before, osc_workflow)
    assert [job["State"].split()[0] for job in attempts[:2]] == ["FAILED", "CANCELLED"]
    assert int(attempts[0]["ElapsedRaw"]) < 60 * int(attempts[0]["TimelimitRaw"])  # stopped before its walltime
    # Each retry asks for 2x, then 3x the memory and walltime of the first attempt.
    assert [job["ReqMem"] for job in attempts] == ["1000M", "2000M", "3000M"]
    assert [job["TimelimitRaw"] for job in attempts] == ["2", "4", "6"]


def test_two_gpus_on_one_node_with_the_site_modules_loaded(slurm, slurm_study, osc_workflow):
    # The site's modules (python/3.12) load in the job (`--sdm env-modules`, Lmod); the stand-in module puts
    # a python without torch first on PATH, as OSC's does, so the job must still run the venv's python.
    # (Snakemake skips env-modules when a frame's file name contains "slurm": this test's folder does not.)
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]}, "train_job": {"gpus": 2}},
    )
    env = osc_env(
        slurm, slurm_study.scratch, BASH_ENV=str(LMOD_INIT), MODULEPATH=str(osc_workflow / "tests" / "modules")
    )
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    result = run(
        osc_workflow,
        env,
        *("--profile", "profiles/osc", "--sdm", "env-modules", "--until", "train", "--verbose", *FAST_STATUS),
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]

    # What was asked for (the one node and the walltime signal show only in the sbatch call) ...
    (sbatch,) = [line for line in result.stderr.splitlines() if "sbatch call:" in line and "rule_train" in line]
    for flag in ("--nodes=1", "--gpus=2", "--cpus-per-task=8", "--mem 1500", "-t 30", "--signal=USR1@300", "-p gpu"):
        assert f" {flag}" in sbatch, flag
    # ... and what SLURM gave: one node, 2 GPUs, 4 cores per GPU, the memory and the walltime.
    (job,) = attempts_of(slurm, "train", before, osc_workflow)
    assert job["State"] == "COMPLETED" and job["NNodes"] == "1"
    assert {"cpu=8", "gres/gpu=2", "mem=1500M", "node=1"} <= set(job["AllocTRES"].split(","))
    assert job["TimelimitRaw"] == "30"
    log = (osc_workflow / "results" / "logs" / "train" / "lr-0.05_seed-0.log").read_text()
    assert "(fp32, 2 process(es))" in log  # torchrun's two workers
    info = json.loads((osc_workflow / "results" / "runs" / "lr-0.05_seed-0" / "run_info.json").read_text())
    assert info["provenance"]["modules"] == "python/3.12"


def test_a_hundred_run_sweep_reaches_slurm_in_two_sbatch_calls(slurm, slurm_study, osc_workflow):
    # Train jobs ready together go out as job arrays of at most 50 (profiles/osc). The GPU partition is held
    # down so that the arrays queue without running: only the submissions are counted.
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.01 * i for i in range(1, 11)]}, "seeds": list(range(10))}},
    )
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    slurm.set_partition_state("gpu", "DOWN")
    workflow = start_training(osc_workflow, osc_env(slurm, slurm_study.scratch))
    try:

        def queued_train_tasks() -> list[str]:
            return [job["JobID"] for job in slurm.queue() if rule_of(job["Comment"]) == "train"]

        wait_until(lambda: len(queued_train_tasks()) == 100, 300, "100 queued train tasks")
        tasks = queued_train_tasks()
        assert all("_" in task for task in tasks)  # array tasks (JOBID_INDEX), not single jobs
        submissions = {task.split("_")[0] for task in tasks}  # one array job per sbatch call
    finally:
        workflow.send_signal(signal.SIGINT)  # Snakemake cancels its jobs
        try:
            workflow.wait(120)
        finally:
            workflow.kill()
            subprocess.run(["scancel", "--user=root"], env=slurm.env, check=True)
            slurm.set_partition_state("gpu", "UP")
    assert len(submissions) == 2
    assert not [
        job
        for job in slurm.sacct("JobID", "Comment")
        if job["JobID"] not in before and rule_of(job["Comment"]) != "train"
    ]


def study_status(workdir: Path, env: dict) -> str:
    """`make status` in the study's folder."""
    result = subprocess.run(
        [sys.executable, "scripts/status.py"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_snakemake_killed_while_its_jobs_train_costs_only_the_wait(slurm, slurm_study, osc_workflow):
    # Three runs; the node runs two train jobs at a time, so when the login session dies two train and one waits.
    run_ids = ["lr-0.05_seed-0", "lr-0.1_seed-0", "lr-0.2_seed-0"]
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 24, "batch_size": 8}, "sweep": {"grid": {"lr": [0.05, 0.1, 0.2]}, "seeds": [0]}},
    )
    env = osc_env(slurm, slurm_study.scratch, MLPIPE_POLL_SECONDS="2")
    runs_dir = osc_workflow / "results" / "runs"
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    controller = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/osc", *FAST_STATUS],
        cwd=osc_workflow,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def training() -> list[str]:
        return [run for run in run_ids if (runs_dir / run / "run_info.json").exists()]

    try:
        wait_until(lambda: len(training()) == 2, 400, "two runs to start training")
        queued = [job for job in slurm.queue() if rule_of(job["Comment"]) == "train"]
        assert sorted(job["State"] for job in queued) == ["PENDING", "RUNNING", "RUNNING"]
    finally:
        controller.send_signal(signal.SIGKILL)  # the login session dies with Snakemake in it
        controller.wait()

    # What `make status` shows meanwhile: which run each array task trains, its attempt, its epochs.
    shown = study_status(osc_workflow, env)
    for run_id in training():
        info = json.loads((runs_dir / run_id / "run_info.json").read_text())
        task = info["provenance"]["slurm_job_id"]
        assert re.search(rf"^{re.escape(run_id)}\s+running\s+{re.escape(task)}\s+1\s+\d+/24 ", shown, re.M), shown
    assert re.search(r"^lr-\S+\s+waiting\s+-", shown, re.M) and "SLURM jobs of this study (squeue): " in shown

    # The README's recovery: unlock, then the same command (it waits for the dead one's jobs first).
    assert run(osc_workflow, env, "--profile", "profiles/osc", "--unlock").returncode == 0
    recovery = run(osc_workflow, env, "--profile", "profiles/osc", "--rerun-incomplete", *FAST_STATUS)
    said = recovery.stdout + recovery.stderr
    assert recovery.returncode == 0, said[-5000:]
    assert "waiting for what an earlier Snakemake of this study left queued or running: SLURM job " in said
    assert "job(s) finished after the Snakemake that started them ended: taken as done" in said

    # Each run trained once, in the jobs the first Snakemake submitted; no epoch was trained twice.
    train_jobs = attempts_of(slurm, "train", before, osc_workflow)
    assert len(train_jobs) == 3 and len({job["JobID"].split("_")[0] for job in train_jobs}) == 1
    assert all(job["State"] == "COMPLETED" for job in train_jobs)
    for run_id in run_ids:
        info = json.loads((runs_dir / run_id / "run_info.json").read_text())
        assert info["status"] == "finished" and info["attempts"] == 1, info
        assert len(pd.read_csv(runs_dir / run_id / "metrics.csv")) == 24
    assert len(pd.read_csv(osc_workflow / "results" / "summary.csv")) == 3

    # ... and the study is as if nothing happened: nothing left to do, and an edit still reaches every run.
    dry_run = run(osc_workflow, env, "--profile", "profiles/osc", "-n")
    assert "Nothing to be done" in dry_run.stdout + dry_run.stderr, dry_run.stdout[-3000:]
    # (download and preprocess ran in the study whose scratch this copy shares: their records are there)
    missing = re.search(r"^Rules with missing metadata: (.*)$", dry_run.stdout + dry_run.stderr, re.M)
    assert missing is None or not {"train", "evaluate"} & set(missing[1].split()), missing[1]
    schedule = osc_workflow / "src" / "mlpipe" / "training" / "schedule.py"
    schedule.write_text(schedule.read_text() + "\n# an edit\n")
    edited = run(osc_workflow, env, "--profile", "profiles/osc", "-n", "--quiet", "rules")
    assert re.search(r"^train\s+3$", edited.stdout, re.M), edited.stdout


def asked_mb(job: dict, expected: int) -> bool:
    """Whether the job asked for ``expected`` MB; the SLURM plugin adds a few to an array job (its task list)."""
    return expected <= int(job["ReqMem"].removesuffix("M")) <= expected + 16


# The local node announces more cores than this machine has, so that a job can ask for a Pitzer GPU's 4: two
# train jobs of 4 threads side by side would share 2 cores, and their epochs take 2 to 7 times as long from one
# sweep to the next. With a core each their speed is steady, as on a compute node.
ONE_THREAD = ("--set-threads", "train=1")
# Enough epochs that training, not start-up, is most of a job, as it is on a GPU node.
EPOCHS = 30


@pytest.mark.alone  # it compares the speed of two sweeps: nothing else may share the machine's cores
def test_a_second_sweep_asks_for_what_the_first_used_and_its_cost_is_foreseen(slurm, slurm_study, osc_workflow):
    # train_job.runtime and mem_mb: auto. The first sweep asks for the unmeasured figures; what its runs used
    # (the registry job keeps it in results/resource_profile.json) sizes the second sweep's requests.
    train_job = {"runtime": "auto", "mem_mb": "auto", "unmeasured_runtime": 30, "unmeasured_mem_mb": 1500}
    with_own_checkpoints(
        osc_workflow,
        {
            "train": {"epochs": EPOCHS, "batch_size": 32},
            "sweep": {"grid": {"lr": [0.05, 0.1]}, "seeds": [0]},
            # SLURM's warning comes up to a minute early: a short one leaves these one-minute runs room to finish.
            "train_job": train_job | {"signal_before_walltime": 5},
        },
    )
    env = osc_env(slurm, slurm_study.scratch)
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    first = run(osc_workflow, env, "--profile", "profiles/osc", *ONE_THREAD, *FAST_STATUS)
    assert first.returncode == 0, first.stderr[-5000:]
    first_jobs = attempts_of(slurm, "train", before, osc_workflow)
    assert [job["TimelimitRaw"] for job in first_jobs] == ["30", "30"]
    assert all(asked_mb(job, 1500) for job in first_jobs)
    used_minutes = max(math.ceil(int(job["ElapsedRaw"]) / 60) for job in first_jobs)
    peaks = [
        json.loads((osc_workflow / "results" / "runs" / run_id / "run_info.json").read_text())["usage"][
            "peak_host_memory_mb"
        ]
        for run_id in ("lr-0.05_seed-0", "lr-0.1_seed-0")
    ]

    edit_config(osc_workflow, {"sweep": {"grid": {"lr": [0.2, 0.3]}}})
    planned = run(osc_workflow, env, "--profile", "profiles/osc", *ONE_THREAD, "-n")
    said = planned.stdout + planned.stderr
    assert planned.returncode == 0 and "learned from 2 finished run(s): " in said, said[-3000:]
    expected_hours = float(re.search(r"and should use about ([0-9.e-]+) GPU-hours", said)[1])
    # ... which is what the first sweep's runs used: per run, the median start-up and its epochs x the median epoch.
    (learned,) = json.loads((osc_workflow / "results" / "resource_profile.json").read_text()).values()
    startup = statistics.median(sample["startup_seconds"] for sample in learned.values())
    epoch = statistics.median(sample["epoch_seconds"] for sample in learned.values())
    assert expected_hours == pytest.approx(2 * (startup + EPOCHS * epoch) / 3600, rel=0.01)

    before = {job["JobID"] for job in slurm.sacct("JobID")}
    second = run(osc_workflow, env, "--profile", "profiles/osc", *ONE_THREAD, *FAST_STATUS)
    assert second.returncode == 0, second.stderr[-5000:]
    second_jobs = attempts_of(slurm, "train", before, osc_workflow)
    assert len(second_jobs) == 2 and all(job["State"] == "COMPLETED" for job in second_jobs)  # none timed out
    for job in second_jobs:
        assert int(job["TimelimitRaw"]) <= 2 * used_minutes, (job, used_minutes)
        assert asked_mb(job, max(1000, math.ceil(max(peaks) * 1.5 / 100) * 100)), job
    # The report's GPU-hours used are SLURM's elapsed times, and the dry run's estimate is within 20 % of them.
    cost = pd.read_csv(osc_workflow / "results" / "cost.csv").set_index("attempts")
    used_hours = cost.loc["all", "gpu_hours_used"]
    assert used_hours == pytest.approx(sum(int(job["ElapsedRaw"]) for job in second_jobs) / 3600)
    print(f"dry run's estimate {expected_hours} GPU-hours, used {used_hours:.4g}")
    assert expected_hours == pytest.approx(used_hours, rel=0.2)
    assert cost.loc["first attempts", "gpu_hours_requested"] == pytest.approx(
        sum(int(job["TimelimitRaw"]) for job in second_jobs) / 60
    )
