"""The training engine in real processes: determinism, resume after real signals, guards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, job_env
from mlpipe.config import check_config, load_schema
from mlpipe.download.stage import download_dataset
from mlpipe.preprocess.stage import preprocess_dataset
from mlpipe.training.checkpoint import load_checkpoint
from mlpipe.training.signals import EXIT_CHECKPOINTED

TIMING_COLUMNS = ["epoch_seconds", "images_per_second"]


@pytest.fixture(scope="session")
def processed_digits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    download_dataset({"name": "digits"}, root / "raw")
    preprocess_dataset(root / "raw", root / "processed", {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0})
    return root / "processed"


def hparams(**overrides) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["sweep"] = {"grid": {}, "seeds": [overrides.pop("seed", 0)]}
    config["train"].update(overrides)
    runs = check_config(config, load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return next(iter(runs.values()))


class TrainProcess:
    """scripts/train.py in a real subprocess, its log lines collected as they come."""

    def __init__(self, run_dir: Path, processed: Path, params: dict, *extra: str, env: dict | None = None):
        self.lines: list[str] = []
        command = [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            "--run-id",
            run_dir.name,
            "--hparams",
            json.dumps(params),
            "--processed-dir",
            str(processed),
            "--out-dir",
            str(run_dir / "out"),
            "--state-dir",
            str(run_dir / "state"),
            "--threads",
            "1",
            *extra,
        ]
        self.process = subprocess.Popen(
            command, env=env or job_env(), stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}:\n{''.join(self.lines)}")
            time.sleep(0.02)

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)


def signal_process_tree(root_pid: int, signum: int) -> None:
    """Signal a process and all its descendants (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        os.kill(pid, signum)


def train(run_dir: Path, processed: Path, params: dict, *extra: str, env: dict | None = None) -> TrainProcess:
    process = TrainProcess(run_dir, processed, params, *extra, env=env)
    assert process.finish() == 0, process.log
    return process


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "out" / "last.pt")["state_dict"]


def deterministic_metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "out" / "metrics.csv").drop(columns=TIMING_COLUMNS)


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs"


# Small batches make many steps per epoch, so a signal lands mid-epoch.
RESUME_PARAMS = dict(epochs=3, batch_size=8, ema_decay=0.9, label_smoothing=0.1, crop_padding=1)


@pytest.fixture(scope="module")
def uninterrupted_run(processed_digits, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    train(run_dir, processed_digits, hparams(**RESUME_PARAMS))
    return run_dir


def test_same_config_and_seed_give_identical_metrics_and_weights(uninterrupted_run, processed_digits, tmp_path):
    again = tmp_path / "again"
    train(again, processed_digits, hparams(**RESUME_PARAMS))
    pd.testing.assert_frame_equal(deterministic_metrics(again), deterministic_metrics(uninterrupted_run))
    assert_same_weights(final_weights(again), final_weights(uninterrupted_run))


def test_another_seed_gives_other_weights(uninterrupted_run, processed_digits, tmp_path):
    other = tmp_path / "other"
    train(other, processed_digits, hparams(**RESUME_PARAMS, seed=1))
    assert not torch.equal(final_weights(other)["head.1.weight"], final_weights(uninterrupted_run)["head.1.weight"])


def test_run_interrupted_by_real_signals_resumes_bit_identical(uninterrupted_run, processed_digits, tmp_path):
    run_dir = tmp_path / "interrupted"
    params = hparams(**RESUME_PARAMS)
    stops = []

    # 1. SIGUSR1 (SLURM's warning before walltime) during the second epoch.
    process = TrainProcess(run_dir, processed_digits, params)
    process.wait_for("epoch 1/3")
    time.sleep(0.3)
    process.process.send_signal(signal.SIGUSR1)
    assert process.finish() == EXIT_CHECKPOINTED, process.log
    stops.append(load_checkpoint(run_dir / "state" / "resume.pt")["progress"])
    assert not (run_dir / "out" / "metrics.csv").exists()  # outputs appear only when training completes

    # 2. SIGKILL (no chance to save) shortly after resuming: the next attempt resumes from the last saved state.
    process = TrainProcess(run_dir, processed_digits, params)
    process.wait_for("resuming")
    time.sleep(0.5)
    process.process.send_signal(signal.SIGKILL)
    assert process.finish() == -signal.SIGKILL

    # 3. SIGTERM (scancel, preemption) while resuming again.
    process = TrainProcess(run_dir, processed_digits, params)
    process.wait_for("resuming")
    time.sleep(0.2)
    process.process.send_signal(signal.SIGTERM)
    assert process.finish() == EXIT_CHECKPOINTED, process.log
    stops.append(load_checkpoint(run_dir / "state" / "resume.pt")["progress"])

    # 4. Run to the end.
    final = train(run_dir, processed_digits, params)
    assert "resuming" in final.log
    assert any(stop["step"] > 0 for stop in stops), f"no stop landed mid-epoch: {stops}"
    assert_same_weights(final_weights(run_dir), final_weights(uninterrupted_run))
    pd.testing.assert_frame_equal(deterministic_metrics(run_dir), deterministic_metrics(uninterrupted_run))
    for name in ("best.pt", "run_config.json"):
        assert (run_dir / "out" / name).exists()


def test_a_finished_run_trains_again_from_scratch(uninterrupted_run, processed_digits, tmp_path):
    run_dir = tmp_path / "twice"
    params = hparams(epochs=1)
    train(run_dir, processed_digits, params)
    again = train(run_dir, processed_digits, params)
    assert "training again from scratch" in again.log


def test_changed_hyperparameters_do_not_resume_an_old_checkpoint(processed_digits, tmp_path):
    run_dir = tmp_path / "changed"
    process = TrainProcess(run_dir, processed_digits, hparams(epochs=2, batch_size=8))
    process.wait_for("epoch 1/2")
    process.process.send_signal(signal.SIGUSR1)
    assert process.finish() == EXIT_CHECKPOINTED
    changed = train(run_dir, processed_digits, hparams(epochs=2, batch_size=8, lr=0.01))
    assert "not resuming" in changed.log and "hparams changed" in changed.log
    assert "resuming" not in changed.log.replace("not resuming", "")


def test_exploding_loss_stops_with_the_step_named(processed_digits, tmp_path):
    process = TrainProcess(
        tmp_path / "nan", processed_digits, hparams(lr=1e12, epochs=2, warmup_epochs=0, schedule="constant")
    )
    assert process.finish() == 1
    last_line = process.log.strip().splitlines()[-1]
    assert last_line.startswith("error: NonFiniteLossError: training loss is ")
    assert "at epoch 1, step " in last_line and "lower train.lr" in last_line
    assert not (tmp_path / "nan" / "out" / "metrics.csv").exists()


def test_job_that_asked_for_a_gpu_and_sees_none_fails_at_once(processed_digits, tmp_path):
    env = job_env() | {"CUDA_VISIBLE_DEVICES": ""}
    env.pop("MLPIPE_ALLOW_CPU", None)
    started = time.monotonic()
    process = TrainProcess(tmp_path / "gpu", processed_digits, hparams(epochs=1), "--gpus", "1", env=env)
    assert process.finish() == 1
    assert time.monotonic() - started < 60
    last_line = process.log.strip().splitlines()[-1]
    assert last_line.startswith("error: NoGpuError: this job asked for 1 GPU(s) but CUDA sees none")
    assert "MLPIPE_ALLOW_CPU=1" in last_line
    assert "epoch" not in process.log


def test_allow_cpu_switch_lets_a_gpu_job_train_on_the_cpu(processed_digits, tmp_path):
    env = job_env() | {"CUDA_VISIBLE_DEVICES": "", "MLPIPE_ALLOW_CPU": "1"}
    run = train(tmp_path / "cpu", processed_digits, hparams(epochs=1), "--gpus", "1", env=env)
    assert "on cpu" in run.log


def test_two_process_ddp_run_on_cpu_resumes_after_sigusr1_like_an_uninterrupted_one(processed_digits, tmp_path):
    env = job_env() | {"MLPIPE_ALLOW_CPU": "1"}
    params = hparams(epochs=3, batch_size=16)
    reference = train(tmp_path / "ddp-reference", processed_digits, params, "--gpus", "2", env=env)
    assert "2 process(es)" in reference.log

    run_dir = tmp_path / "ddp"
    process = TrainProcess(run_dir, processed_digits, params, "--gpus", "2", env=env)
    process.wait_for("epoch 1/3")
    time.sleep(0.2)
    signal_process_tree(process.process.pid, signal.SIGUSR1)  # as SLURM does: every process of the job step
    assert process.finish() != 0
    assert "state saved, rerun to resume" in process.log
    saved = load_checkpoint(run_dir / "state" / "resume.pt")
    assert saved["fingerprint"]["world_size"] == 2 and saved["progress"]["epoch"] >= 1

    resumed = train(run_dir, processed_digits, params, "--gpus", "2", env=env)
    assert "resuming" in resumed.log
    run_config = json.loads((run_dir / "out" / "run_config.json").read_text())
    assert run_config["world_size"] == 2
    assert_same_weights(final_weights(run_dir), final_weights(tmp_path / "ddp-reference"))
    pd.testing.assert_frame_equal(deterministic_metrics(run_dir), deterministic_metrics(tmp_path / "ddp-reference"))


def test_torchrun_workers_get_the_parents_arguments_with_their_own_values():
    from mlpipe.training.launch import with_options

    argv = ["--run-id", "r", "--processed-dir", "/scratch/p", "--threads=8", "--gpus", "2"]
    assert with_options(argv, processed_dir="/tmp/staged", threads="4") == [
        "--run-id",
        "r",
        "--gpus",
        "2",
        "--processed-dir",
        "/tmp/staged",
        "--threads",
        "4",
    ]
