"""mlpipe.recovery: a Snakemake that dies while its jobs train costs nothing but the time until it is back.

The SLURM half (a real SIGKILL of a real Snakemake whose train jobs run in a local SLURM cluster) is in
test_cluster.py; here the same story locally, and each piece on its own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_workflow, edit_config, job_env, planned_jobs, snakemake
from mlpipe.cluster.invocation import read_invocation
from mlpipe.recovery.orphans import Leftovers, wait_for_leftovers
from mlpipe.recovery.study_jobs import StudyJob, parse_squeue

RUN = "lr-0.05_seed-0"


def test_the_study_s_jobs_are_those_snakemake_submitted_from_its_folder(tmp_path):
    study, other = tmp_path / "study", tmp_path / "other"
    study.mkdir()
    other.mkdir()
    output = "\n".join(
        [
            f"41_1|RUNNING|rule_train_wildcards_lr-0.05_seed-0|{study}",
            f"41_2|PENDING|rule_train_wildcards_lr-0.05_seed-0|{study}",  # an array keeps its first task's comment
            f"42|RUNNING|rule_evaluate_wildcards_lr-0.1_seed-0|{other}",  # another study
            f"43|RUNNING|my own job|{study}",  # not Snakemake's
            f"44|PENDING|rule_preprocess|{study}/.",
        ]
    )
    assert parse_squeue(output, study) == [
        StudyJob("41_1", "RUNNING", "train"),
        StudyJob("41_2", "PENDING", "train"),
        StudyJob("44", "PENDING", "preprocess"),
    ]


def test_waiting_says_what_it_waits_for_and_returns_when_nothing_is_left():
    holder = {"pid": 7, "host": "p0001", "slurm_job_id": "41_1", "since": "2026-12-04T03:00:00+00:00"}
    training = Leftovers((StudyJob("41_1", "RUNNING", "train"), StudyJob("41_2", "PENDING", "train")), ((RUN, holder),))
    started = Leftovers((StudyJob("41_2", "RUNNING", "train"),), ())
    found = iter([training, training, started, Leftovers((), ())])
    said: list[str] = []
    wait_for_leftovers(lambda: next(found), said.append, poll_seconds=0)
    assert said == [
        "waiting for what an earlier Snakemake of this study left queued or running: lr-0.05_seed-0 (trained by "
        "SLURM job 41_1 on host p0001 (pid 7, since 2026-12-04T03:00:00+00:00)); SLURM job 41_2 (train, pending). "
        "Nothing is submitted before they end (checked every 0 s); Ctrl-C stops waiting and leaves them running",
        "still waiting for SLURM job 41_2 (train, running)",
        "they have ended: what they finished counts as done, the rest runs now",
    ]
    said.clear()
    wait_for_leftovers(lambda: Leftovers((), ()), said.append, poll_seconds=0)
    assert said == []


@pytest.mark.parametrize(
    "argv, runs_jobs",
    [
        (["--cores", "2"], True),
        (["--profile", "profiles/osc", "--rerun-incomplete"], True),
        (["--cores", "1", "archive"], True),  # a target, not --archive
        (["-n"], False),
        (["--unlock"], False),
        (["--summary"], False),
        (["--dag"], False),
        (["--list-changes", "params"], False),
        (["--report", "results/report.html"], False),
        (["--touch"], False),
    ],
)
def test_a_command_line_says_whether_it_runs_jobs(argv, runs_jobs):
    assert read_invocation(["snakemake", *argv]).runs_jobs is runs_jobs


def start_study(workdir: Path, env: dict) -> subprocess.Popen:
    """`snakemake --cores 1` in the background, as in a tmux on a login node."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_trainer_left_running_by_a_killed_snakemake_is_waited_for_and_trains_nothing_twice(tmp_path):
    workdir = copy_workflow(tmp_path / "study")
    edit_config(workdir, {"train": {"epochs": 30, "batch_size": 8}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]}})
    env = job_env() | {"MLPIPE_POLL_SECONDS": "1"}
    train_log = workdir / "results" / "logs" / "train" / f"{RUN}.log"
    controller = start_study(workdir, env)
    deadline = time.monotonic() + 300
    while not (train_log.exists() and "epoch 1/30" in train_log.read_text()):
        assert time.monotonic() < deadline and controller.poll() is None, "training never started"
        time.sleep(0.1)
    controller.send_signal(signal.SIGKILL)  # the login session dies; its trainer trains on
    controller.wait()

    snakemake(workdir, "--unlock")
    dry_run = snakemake(workdir, "-n", env={"MLPIPE_POLL_SECONDS": "1"})
    said = dry_run.stdout + dry_run.stderr
    assert f"an earlier Snakemake of this study left queued or running: {RUN} (trained by pid " in said
    recovery = snakemake(workdir, "--cores", "1", "--rerun-incomplete", env={"MLPIPE_POLL_SECONDS": "1"})
    said = recovery.stdout + recovery.stderr
    assert f"waiting for what an earlier Snakemake of this study left queued or running: {RUN} (trained by pid " in said
    assert "they have ended" in said

    # The orphan trained all 30 epochs once; the rerun Snakemake asked for wrote its outputs from that state.
    assert "finished: writing its outputs again without training" in train_log.read_text()
    assert "epoch 1/30" not in train_log.read_text()
    info = json.loads((workdir / "results" / "runs" / RUN / "run_info.json").read_text())
    assert info["status"] == "finished" and info["attempts"] == 1 and info["progress"]["epochs_done"] == 30
    metrics = (workdir / "results" / "runs" / RUN / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 31  # header and 30 epochs
    assert (workdir / "results" / "summary.csv").exists()
    assert planned_jobs(workdir) == {}


def finished_study(tmp_path: Path) -> Path:
    workdir = copy_workflow(tmp_path / "study")
    edit_config(workdir, {"train": {"epochs": 2}, "sweep": {"grid": {"lr": [0.05, 0.1]}, "seeds": [0]}})
    snakemake(workdir, "--cores", "2")
    return workdir


def finish_without_snakemake(workdir: Path, run_id: str) -> None:
    """What a job whose Snakemake died leaves: its outputs, and no record of Snakemake's (the dead one would have
    written it when the job ended; the job's own Snakemake inside SLURM does not)."""
    outputs = [f"results/runs/{run_id}/{name}" for name in ("metrics.csv", "best.pt", "last.pt", "run_config.json")]
    snakemake(workdir, "--cleanup-metadata", *outputs)
    assert planned_jobs(workdir) == {}  # without a record, Snakemake takes them as done ...
    edit_training_code(workdir)
    planned = planned_jobs(workdir)
    restore_training_code(workdir)
    assert planned["train"] == 1  # ... and an edit no longer reaches them: only the other run would retrain


TRAINING_FILE = Path("src") / "mlpipe" / "training" / "schedule.py"


def edit_training_code(workdir: Path) -> None:
    path = workdir / TRAINING_FILE
    path.write_text(path.read_text() + "\n# an edit\n")


def restore_training_code(workdir: Path) -> None:
    path = workdir / TRAINING_FILE
    path.write_text(path.read_text().removesuffix("\n# an edit\n"))


def rerun_the_plots(workdir: Path) -> subprocess.CompletedProcess:
    """A command that has something to run (a plot edit), so that the study's start hook runs."""
    plots = workdir / "src" / "mlpipe" / "analysis" / "plots.py"
    plots.write_text(plots.read_text() + "\n# a plot edit\n")
    return snakemake(workdir, "--cores", "2", check=False)


def test_jobs_that_finished_after_their_snakemake_died_are_recorded_as_if_it_had_lived(tmp_path):
    workdir = finished_study(tmp_path)
    finish_without_snakemake(workdir, RUN)
    rerun = rerun_the_plots(workdir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 job(s) finished after the Snakemake that started them ended: taken as done" in rerun.stderr
    assert "missing provenance" not in snakemake(workdir, "-n").stdout
    edit_training_code(workdir)
    assert planned_jobs(workdir)["train"] == 2  # the edit reaches the adopted run again


def test_a_job_that_finished_without_its_snakemake_under_code_changed_since_runs_again(tmp_path):
    workdir = finished_study(tmp_path)
    finish_without_snakemake(workdir, RUN)
    edit_training_code(workdir)  # the researcher edits the trainer before the study is picked up again
    stopped = rerun_the_plots(workdir)
    assert stopped.returncode != 0
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"config error: train (run={RUN}) finished after the Snakemake that started them ended, under other code, "
        "settings or inputs than now: their outputs and what was made from them are removed; run the same command "
        "again to redo them"
    )
    for name in ("metrics.csv", "evaluation.json"):
        assert not (workdir / "results" / "runs" / RUN / name).exists()
    assert (workdir / "results" / "runs" / "lr-0.1_seed-0" / "metrics.csv").exists()
    # It retrains, and so does the other run, which the edit reaches as any edit does.
    assert planned_jobs(workdir) == {
        "train": 2,
        "evaluate": 2,
        "summarize": 1,
        "registry": 1,
        "plot": 1,
        "compare": 1,
        "all": 1,
    }
