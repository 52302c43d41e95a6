"""The training engine: the batch path, the schedule, and real training processes (determinism, resume after
real signals, guards, several processes, staging to $TMPDIR)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import (
    REPO,
    SMALL_CONFIG_OVERRIDES,
    copy_workflow,
    edit_config,
    job_env,
    snakemake,
    train_command,
    unwritable_folder,
)
from dataset_files import image_folder_settings, make_image_folder
from mlpipe.config import check_config, load_schema, train_defaults
from mlpipe.download.stage import download_dataset
from mlpipe.layout import processed_files
from mlpipe.models.factory import build_model
from mlpipe.preprocess.stage import preprocess_dataset
from mlpipe.processed import REBUILD_HINT, Normalizer
from mlpipe.requests.profile import startup_seconds
from mlpipe.training.checkpoint import load_checkpoint
from mlpipe.training.data import Augmentation, AugmentationError, TrainBatches, random_crop
from mlpipe.training.ema import WeightAverage
from mlpipe.training.model_check import ModelMismatchError, check_model_fits
from mlpipe.training.schedule import lr_factor
from mlpipe.training.signals import EXIT_CHECKPOINTED
from mlpipe.training.staging import stage_processed


def test_random_crop_matches_a_naive_crop_of_the_zero_padded_image():
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [4, 4], [2, 1], [0, 4], [3, 2]])
    cropped = random_crop(images, shifts, padding=2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(cropped[index], padded[index, :, dy : dy + 6, dx : dx + 7])


def make_batches(**kwargs) -> TrainBatches:
    images = np.arange(20 * 1 * 4 * 4, dtype=np.uint8).reshape(20, 1, 4, 4)
    labels = np.arange(20) % 5
    defaults = dict(
        batch_size=6,
        device=torch.device("cpu"),
        normalizer=Normalizer([0.0], [1.0], torch.device("cpu"), False),
        augmentation=Augmentation(crop_padding=1, flip=True),
        seed=3,
    )
    return TrainBatches(images, labels, **(defaults | kwargs))


def test_float_signals_streamed_from_host_buffers_equal_those_kept_on_the_device():
    signals = np.random.default_rng(0).normal(size=(20, 3, 7)).astype(np.float32)
    common = dict(
        batch_size=6,
        device=torch.device("cpu"),
        normalizer=Normalizer([0.0] * 3, [2.0] * 3, torch.device("cpu"), False, sample_rank=2, dtype="float32"),
        augmentation=Augmentation(),
        seed=3,
    )
    resident = TrainBatches(signals, np.arange(20) % 4, **common)
    streamed = TrainBatches(signals, np.arange(20) % 4, **common, on_device=False)
    plan = resident.plan(1)
    for step in range(resident.steps_per_epoch):
        images, labels = resident.batch(plan, step)
        assert images.dtype == torch.float32 and images.shape == (6, 3, 7)
        assert torch.equal(images, torch.from_numpy(signals[plan.order[step * 6 : (step + 1) * 6].numpy()]) / 2)
        streamed_images, streamed_labels = streamed.batch(streamed.plan(1), step)
        assert torch.equal(images, streamed_images) and torch.equal(labels, streamed_labels)


@pytest.mark.parametrize("key, value", [("crop_padding", 4), ("flip", True)])
def test_crop_and_flip_are_refused_for_samples_that_are_not_images(key, value):
    params = {"crop_padding": 0, "flip": False, key: value}
    assert Augmentation.for_samples(params, [3, 32, 32]) == Augmentation(**params)
    with pytest.raises(AugmentationError, match=rf"^train.{key}: random crops and flips need images \(C, H, W\), but"):
        Augmentation.for_samples(params, [6, 128])


def test_epoch_plan_depends_only_on_seed_and_epoch():
    first, second = make_batches().plan(4), make_batches().plan(4)
    assert torch.equal(first.order, second.order) and torch.equal(first.shifts, second.shifts)
    assert torch.equal(first.flips, second.flips)
    assert not torch.equal(make_batches().plan(5).order, first.order)
    assert sorted(first.order.tolist()) == list(range(20))


def test_batches_drop_the_last_partial_batch_and_cover_distinct_examples():
    batches = make_batches(augmentation=Augmentation())
    assert batches.steps_per_epoch == 3
    plan = batches.plan(0)
    seen = torch.cat([batches.batch(plan, step)[1] for step in range(3)])
    assert len(seen) == 18


def test_ranks_split_each_global_batch_without_overlap():
    whole = make_batches(augmentation=Augmentation())
    ranks = [make_batches(augmentation=Augmentation(), rank=rank, world_size=2) for rank in range(2)]
    plan = whole.plan(1)
    full_images, _ = whole.batch(plan, 1)
    shards = [rank.batch(rank.plan(1), 1)[0] for rank in ranks]
    assert sorted(map(tuple, torch.cat(shards).flatten(1).tolist())) == sorted(
        map(tuple, full_images.flatten(1).tolist())
    )


@pytest.mark.parametrize("world_size", [1, 2])
def test_batches_streamed_from_host_buffers_equal_those_cut_on_the_device(world_size):
    # The path for data too large for the GPU; on the CPU it runs without pinning, same gathers and buffers.
    for rank in range(world_size):
        resident = make_batches(rank=rank, world_size=world_size)
        streamed = make_batches(rank=rank, world_size=world_size, on_device=False)
        for epoch in range(2):
            plans = resident.plan(epoch), streamed.plan(epoch)
            for step in range(resident.steps_per_epoch):
                (images, labels), (streamed_images, streamed_labels) = (
                    resident.batch(plans[0], step),
                    streamed.batch(plans[1], step),
                )
                assert torch.equal(images, streamed_images) and torch.equal(labels, streamed_labels)


@pytest.mark.parametrize("step, expected", [(0, 0.5), (1, 1.0), (2, 0.9), (6, 0.5), (11, 0.0)])
def test_warmup_then_linear_decay(step, expected):
    # 1 warmup step (half the peak), then linear decay from the peak to 0 over the remaining 10 steps.
    assert lr_factor(step, total_steps=11, warmup_steps=1, decay="linear") == pytest.approx(expected)


def test_cosine_schedule_starts_at_the_peak_and_ends_at_zero():
    assert lr_factor(0, 100, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)


def test_compiled_engine_trains_and_saves_plain_state_dict_keys():
    from mlpipe.device import choose_precision
    from mlpipe.training.engine import Engine

    torch.manual_seed(0)
    device = torch.device("cpu")
    hparams = train_defaults(
        load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"),
        lr=0.05,
        weight_decay=0.0,
        epochs=1,
        schedule="constant",
        warmup_epochs=0,
        ema_decay=0.9,
        compile=True,
    )
    engine = Engine.build(build_model("small_cnn", 1, 3), hparams, device, choose_precision(device), steps_per_epoch=30)
    images, labels = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    losses = [float(engine.step(images, labels)[0]) for _ in range(30)]
    assert losses[-1] < losses[0] / 2
    keys = engine.state_dict()["model"].keys()
    assert keys == build_model("small_cnn", 1, 3).state_dict().keys()  # no "_orig_mod." from torch.compile
    assert engine.eval_model is engine.ema.module


def test_weight_average_moves_parameters_and_buffers_towards_the_model_and_copies_counters():
    model = build_model("resnet18_cifar", 3, 10)
    average = WeightAverage(model, decay=0.75)
    start = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # moves batch-norm statistics and counters
    average.update()
    for name, value in average.state_dict().items():
        current = model.state_dict()[name]
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * start[name] + 0.25 * current), name
        else:
            assert torch.equal(value, current), name


TIMING_COLUMNS = ["epoch_seconds", "images_per_second", "data_wait_share"]


def hparams(**overrides) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["sweep"] = {"grid": {}, "seeds": [overrides.pop("seed", 0)]}
    config["train"].update(overrides)
    runs = check_config(config, load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return next(iter(runs.values()))


class TrainProcess:
    """scripts/train.py in a real subprocess, its log lines collected as they come."""

    def __init__(
        self, run_dir: Path, processed: Path, params: dict, *extra: str, env: dict | None = None, prefix: list[str] = ()
    ):
        self.lines: list[str] = []
        command = [*prefix, *train_command(run_dir, processed, json.dumps(params), "--threads", "1", *extra)]
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
    # The time figures continue too: each epoch's data wait, those of the epochs it resumed in included.
    assert pd.read_csv(run_dir / "out" / "metrics.csv")["data_wait_share"].between(0, 1).all()
    for name in ("best.pt", "run_config.json"):
        assert (run_dir / "out" / name).exists()


def rung(run_dir: Path, processed: Path, params: dict, until: int) -> TrainProcess:
    """A successive-halving rung of the run: train to ``until`` epochs, keep the state, write the rung's record."""
    record = str(run_dir / f"rung-{until}.json")
    return train(run_dir, processed, params, "--until-epoch", str(until), "--rung-record", record, "--budget-may-grow")


def test_a_run_trained_rung_by_rung_ends_bit_identical_to_one_trained_straight_through(
    uninterrupted_run, processed_digits, tmp_path
):
    run_dir, params = tmp_path / "rungs", hparams(**RESUME_PARAMS)  # 3 epochs: rungs at 1 and 2, then the end
    straight = pd.read_csv(uninterrupted_run / "out" / "metrics.csv")
    for until in (1, 2):
        if until == 2:  # SLURM's warning in the middle of a rung: it checkpoints, and the retry finishes the rung
            record = str(run_dir / "rung-2.json")
            warned = TrainProcess(
                run_dir, processed_digits, params, "--until-epoch", "2", "--rung-record", record, "--budget-may-grow"
            )
            warned.wait_for("resuming")
            warned.process.send_signal(signal.SIGUSR1)  # honoured at the next step
            assert warned.finish() == EXIT_CHECKPOINTED, warned.log
            assert load_checkpoint(run_dir / "state" / "resume.pt")["progress"]["step"] > 0
            assert not Path(record).exists()
        process = rung(run_dir, processed_digits, params, until)
        assert f"epoch {until}/3" in process.log and f"epoch {until + 1}/3" not in process.log
        record = json.loads((run_dir / f"rung-{until}.json").read_text())
        reached = straight[straight["epoch"] <= until]
        assert record["epochs"] == until and record["best_val_acc"] == reached["val_acc"].max()
        assert record["val_acc"] == reached["val_acc"].tolist()  # the same epochs as trained straight through
        assert not (run_dir / "out" / "metrics.csv").exists()
        info = json.loads((run_dir / "out" / "run_info.json").read_text())
        assert info["status"] == "stopped" and info["progress"]["epochs_done"] == until
    final = train(run_dir, processed_digits, params, "--budget-may-grow")
    assert "resuming" in final.log and "epoch 1/3" not in final.log and "epoch 2/3" not in final.log
    assert_same_weights(final_weights(run_dir), final_weights(uninterrupted_run))
    pd.testing.assert_frame_equal(deterministic_metrics(run_dir), deterministic_metrics(uninterrupted_run))
    # The last job's own share of the training, so that its start-up is its time less that share, not less the
    # whole run's (which would make it 0 and the learned requests too short).
    usage = json.loads((run_dir / "out" / "run_info.json").read_text())["usage"]
    last_epoch = pd.read_csv(run_dir / "out" / "metrics.csv")["epoch_seconds"].iloc[-1]
    assert usage["job_train_seconds"] == pytest.approx(last_epoch) and usage["train_seconds"] > 2 * last_epoch
    assert startup_seconds(usage["wall_seconds"], usage) == pytest.approx(usage["wall_seconds"] - last_epoch)

    # A rung asked for again (the run has gone further since) writes its record from the state, training nothing.
    (run_dir / "rung-1.json").unlink()
    again = rung(run_dir, processed_digits, params, 1)
    assert "epoch" not in again.log.replace("best_epoch", "")
    assert json.loads((run_dir / "rung-1.json").read_text())["val_acc"] == straight["val_acc"].tolist()[:1]


def test_a_halving_run_whose_budget_grew_continues_where_it_ended(processed_digits, tmp_path):
    run_dir = tmp_path / "grown"
    train(run_dir, processed_digits, hparams(epochs=2), "--budget-may-grow")
    grown = train(run_dir, processed_digits, hparams(epochs=3), "--budget-may-grow")
    assert "resuming" in grown.log and "epoch 3/3" in grown.log and "epoch 1/3" not in grown.log
    assert pd.read_csv(run_dir / "out" / "metrics.csv")["epoch"].tolist() == [1, 2, 3]
    train(tmp_path / "plain", processed_digits, hparams(epochs=2))
    anew = train(tmp_path / "plain", processed_digits, hparams(epochs=3))  # without it: a new run from scratch
    assert "hparams changed" in anew.log and "epoch 1/3" in anew.log


def test_a_finished_run_asked_for_again_writes_its_outputs_without_training(processed_digits, tmp_path):
    # What a job that Snakemake resubmitted after it lost track of the one that trained the run does.
    run_dir = tmp_path / "twice"
    params = hparams(epochs=2)
    first = train(run_dir, processed_digits, params)
    assert "epoch 2/2" in first.log
    trained = {name: (run_dir / "out" / name).read_bytes() for name in ("metrics.csv", "best.pt")}
    info = json.loads((run_dir / "out" / "run_info.json").read_text())
    for name in ("metrics.csv", "best.pt", "last.pt", "run_config.json"):  # Snakemake deletes them first
        (run_dir / "out" / name).unlink()
    again = train(run_dir, processed_digits, params)
    assert "finished: writing its outputs again without training" in again.log
    assert "epoch 1/2" not in again.log and "training " not in again.log
    assert {name: (run_dir / "out" / name).read_bytes() for name in trained} == trained
    assert_same_weights(final_weights(run_dir), load_checkpoint(run_dir / "state" / "resume.pt")["engine"]["model"])
    assert json.loads((run_dir / "out" / "run_info.json").read_text()) == info  # the record of the job that trained

    changed = train(run_dir, processed_digits, hparams(epochs=2, lr=0.01))  # another run under the same id
    assert "not resuming" in changed.log and "hparams changed" in changed.log and "epoch 2/2" in changed.log


def test_a_second_trainer_of_a_run_in_training_stops_at_once_and_touches_nothing(processed_digits, tmp_path):
    from mlpipe.recovery.run_lock import run_holder

    run_dir = tmp_path / "busy"
    params = hparams(epochs=50, batch_size=8)
    first = TrainProcess(run_dir, processed_digits, params, env=job_env() | {"SLURM_JOB_ID": "4242"})
    try:
        first.wait_for("epoch 1/50")
        holder = run_holder(run_dir / "state")
        assert holder["pid"] == first.process.pid and holder["slurm_job_id"] == "4242"
        info_before = json.loads((run_dir / "out" / "run_info.json").read_text())
        started = time.monotonic()
        second = TrainProcess(run_dir, processed_digits, params)
        assert second.finish() == 1
        assert time.monotonic() - started < 60
        last_line = second.log.strip().splitlines()[-1]
        assert last_line.startswith(
            f"error: RunBusyError: busy is being trained by SLURM job 4242 on host {os.uname().nodename} "
            f"(pid {first.process.pid}, since "
        ), last_line
        assert last_line.endswith("this job stops and leaves the run to it")
        assert "Traceback" not in second.log and "epoch" not in second.log
        info = json.loads((run_dir / "out" / "run_info.json").read_text())  # still the first one's record
        assert info["status"] == "running" and "error" not in info
        assert (info["start_time"], info["attempts"]) == (info_before["start_time"], info_before["attempts"])
        assert first.process.poll() is None
    finally:
        first.process.send_signal(signal.SIGTERM)
        first.finish()
    assert run_holder(run_dir / "state") is None  # a process that ends, however it ends, lets go


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
    node_local = tmp_path / "node-local"  # the job's $TMPDIR, where the data would be copied
    node_local.mkdir()
    env = job_env() | {"CUDA_VISIBLE_DEVICES": "", "MLPIPE_STAGE_TO_TMPDIR": "1", "TMPDIR": str(node_local)}
    env.pop("MLPIPE_ALLOW_CPU", None)
    started = time.monotonic()
    process = TrainProcess(tmp_path / "gpu", processed_digits, hparams(epochs=1), "--gpus", "2", env=env)
    assert process.finish() == 1
    assert time.monotonic() - started < 60
    last_line = process.log.strip().splitlines()[-1]
    assert last_line.startswith("error: NoGpuError: this job asked for 2 GPU(s) but CUDA sees none")
    assert "MLPIPE_ALLOW_CPU=1" in last_line
    assert "epoch" not in process.log
    assert not (node_local / "mlpipe-data").exists()  # stopped before copying the data
    assert "torch.distributed" not in process.log and "WORLD_SIZE" not in process.log  # and before torchrun
    assert recorded_error(tmp_path / "gpu").startswith("NoGpuError: this job asked for 2 GPU(s)")


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


def test_processed_data_is_staged_to_tmpdir(tmp_path):
    settings = image_folder_settings(make_image_folder(tmp_path / "images"))
    download_dataset(settings, tmp_path / "raw")
    preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    staged = stage_processed(tmp_path / "processed", str(tmp_path / "node-local"))
    assert staged == tmp_path / "node-local" / "mlpipe-data" / "processed"
    for name in ("train_images.npy", "test_labels.npy", "meta.json"):
        assert (staged / name).read_bytes() == (tmp_path / "processed" / name).read_bytes()
    assert stage_processed(tmp_path / "processed", None) == tmp_path / "processed"


def test_a_copy_left_in_tmpdir_is_refreshed_when_its_content_changes_not_only_its_size(tmp_path):
    settings = image_folder_settings(make_image_folder(tmp_path / "images"))
    download_dataset(settings, tmp_path / "raw")
    preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings)
    staged = stage_processed(tmp_path / "processed", str(tmp_path / "node-local"))
    # A new split seed: every array keeps its size, the contents move between splits.
    preprocess_dataset(tmp_path / "raw", tmp_path / "processed", settings | {"split_seed": 7})
    assert (staged / "train_images.npy").stat().st_size == (tmp_path / "processed" / "train_images.npy").stat().st_size
    assert (staged / "train_images.npy").read_bytes() != (tmp_path / "processed" / "train_images.npy").read_bytes()
    assert stage_processed(tmp_path / "processed", str(tmp_path / "node-local")) == staged
    for path in processed_files(tmp_path / "processed"):
        assert (staged / path.name).read_bytes() == path.read_bytes(), path.name


def test_an_image_folder_trains_through_snakemake_from_a_copy_in_tmpdir(tmp_path):
    root = make_image_folder(tmp_path / "images")
    workdir = copy_workflow(tmp_path / "project")
    edit_config(
        workdir,
        SMALL_CONFIG_OVERRIDES
        | {
            "dataset": {"name": "image_folder", "image_folder": {"root": str(root), "size": [16, 16], "channels": 1}},
            "train": {"epochs": 2, "batch_size": 8},
            "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]},
            "train_job": {"stage_to_tmpdir": True},
        },
    )
    (tmp_path / "node-local").mkdir()  # a job's $TMPDIR on a compute node
    snakemake(workdir, "--cores", "2", env={"TMPDIR": str(tmp_path / "node-local")})
    train_log = (workdir / "results" / "logs" / "train" / "lr-0.05_seed-0.log").read_text()
    assert f"to {tmp_path / 'node-local' / 'mlpipe-data' / 'image_folder'}" in train_log  # read from the staged copy
    meta = json.loads((workdir / "data" / "processed" / "image_folder" / "meta.json").read_text())
    assert meta["classes"] == ["birds", "cats", "dogs"]
    assert (workdir / "results" / "plots" / "confusion_best.png").exists()


@pytest.mark.parametrize("damage", ["garbage", "cut to half its size"])
def test_an_unreadable_resume_file_is_moved_aside_and_the_run_starts_fresh(finished_copy, damage):
    run_id = "lr-0.05_seed-0"
    resume = finished_copy / "data" / "checkpoints" / run_id / "resume.pt"
    saved = resume.read_bytes()
    damaged = b"not a checkpoint\n" * 64 if damage == "garbage" else saved[: len(saved) // 2]
    resume.write_bytes(damaged)
    snakemake(finished_copy, "--cores", "1", "-f", f"results/runs/{run_id}/metrics.csv")
    kept = list(resume.parent.glob("resume.unreadable-*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # kept for inspection, as it was
    log = (finished_copy / "results" / "logs" / "train" / f"{run_id}.log").read_text()
    warning = next(line for line in log.splitlines() if "cannot be read as resumable state" in line)
    named = [path.relative_to(finished_copy) for path in (resume, kept[0])]  # the rule passes relative paths
    assert f"{named[0]} cannot be read" in warning and f"moved to {named[1]}, starting afresh" in warning
    assert load_checkpoint(resume)["progress"]["finished"]  # the fresh run saved its own state
    run_info = json.loads((finished_copy / "results" / "runs" / run_id / "run_info.json").read_text())
    assert run_info["status"] == "finished"


def test_a_resume_file_that_holds_no_resumable_state_is_moved_aside(processed_digits, tmp_path):
    run_dir = tmp_path / "weights-only"
    (run_dir / "state").mkdir(parents=True)
    torch.save({"state_dict": {}}, run_dir / "state" / "resume.pt")  # e.g. a weights file copied over it
    run = train(run_dir, processed_digits, hparams(epochs=1))
    assert "holds no resumable state" in run.log
    assert len(list((run_dir / "state").glob("resume.unreadable-*.pt"))) == 1


def last_line(process: TrainProcess) -> str:
    return process.log.strip().splitlines()[-1]


def recorded_error(run_dir: Path) -> str:
    """The error a failed run recorded in its run_info.json."""
    info = json.loads((run_dir / "out" / "run_info.json").read_text())
    assert info["status"] == "failed", info
    return info["error"]


def test_a_state_folder_that_cannot_be_written_stops_the_run_before_the_first_epoch(processed_digits, tmp_path):
    run_dir, state = tmp_path / "locked", tmp_path / "locked" / "state"
    with unwritable_folder(state) as prefix:
        process = TrainProcess(run_dir, processed_digits, hparams(epochs=1), prefix=prefix)
        assert process.finish() == 1
    assert last_line(process).startswith(
        f"error: StateFolderError: checkpoint_root: cannot write resumable state to {state} ("
    )
    assert "make it writable or set checkpoint_root" in last_line(process)
    assert "epoch 1/" not in process.log and "Traceback" not in process.log
    assert recorded_error(run_dir).startswith("StateFolderError: checkpoint_root: ")


def test_a_batch_larger_than_the_training_split_is_refused_before_training(processed_digits, tmp_path):
    train_count = json.loads((processed_digits / "meta.json").read_text())["counts"]["train"]
    process = TrainProcess(tmp_path / "huge-batch", processed_digits, hparams(batch_size=100000, epochs=1))
    assert process.finish() == 1
    assert last_line(process) == (
        f"error: BatchSizeError: train.batch_size: 100000 is larger than the training split of digits "
        f"({train_count} images); use at most {train_count}"
    )
    assert "epoch 1/" not in process.log


def test_a_model_that_cannot_take_the_images_is_named_with_the_size_it_needs(processed_digits, tmp_path):
    run_dir = tmp_path / "vit"
    process = TrainProcess(run_dir, processed_digits, hparams(model="torchvision.vit_b_16", epochs=1))
    assert process.finish() == 1
    line = last_line(process)
    assert line.startswith(
        "error: ModelMismatchError: train.model: torchvision.vit_b_16 cannot take this dataset's samples of shape "
        "(1, 8, 8) (AssertionError: Wrong image height! Expected 224 but got 8!); "
    )
    assert "224x224" in line
    assert "epoch 1/" not in process.log and "Traceback" not in process.log
    assert recorded_error(run_dir).startswith("ModelMismatchError: train.model: torchvision.vit_b_16 ")


def test_the_model_check_wants_one_score_per_class_and_leaves_the_model_as_it_was():
    images = torch.randn(2, 1, 8, 8)
    model = build_model("small_cnn", 1, 10)
    check_model_fits(model, "small_cnn", images, 10)
    assert model.training
    with pytest.raises(ModelMismatchError) as error:
        check_model_fits(torch.nn.Flatten(), "flatten", images, 10)
    assert str(error.value) == (
        "train.model: flatten gives outputs of shape (2, 64) for 2 samples; training needs (2, 10): one score per class"
    )


@pytest.mark.parametrize("damaged", ["train_images.npy", "meta.json"])
def test_damaged_processed_data_stops_the_run_naming_the_file_and_the_fix(processed_digits, tmp_path, damaged):
    processed = Path(shutil.copytree(processed_digits, tmp_path / "processed"))
    data = (processed / damaged).read_bytes()
    (processed / damaged).write_bytes(data[: len(data) // 2] if damaged.endswith(".npy") else b"")
    process = TrainProcess(tmp_path / "run", processed, hparams(epochs=1))
    assert process.finish() == 1
    assert last_line(process).startswith(f"error: ProcessedDataError: {processed / damaged}: ")
    assert last_line(process).endswith(REBUILD_HINT)
    assert "Traceback" not in process.log


EXAMPLE = REPO / "examples" / "vehicle_sensors"
LAB_MODEL = f"{EXAMPLE / 'src' / 'models' / 'model.py'}:MyModel"


@pytest.fixture(scope="module")
def processed_signals(tmp_path_factory) -> Path:
    """The worked example's vehicle-sensor windows (float32, 6 x 128), a small set, through the real stages."""
    root = tmp_path_factory.mktemp("signals")
    download_dataset({"name": "custom"}, root / "raw")
    settings = {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0}
    dataset_class = "examples/vehicle_sensors/src/data/dataset.py:CustomDataset"
    settings["custom"] = {"class": dataset_class, "args": {"num_windows": 480}}
    command = [sys.executable, str(REPO / "scripts" / "preprocess.py"), "--dataset", json.dumps(settings)]
    command += ["--raw-dir", str(root / "raw"), "--processed-dir", str(root / "processed"), "--threads", "2"]
    subprocess.run(command, cwd=REPO, env=job_env(), check=True, capture_output=True)
    return root / "processed"


def lab_hparams(**overrides) -> dict:
    return hparams(model=LAB_MODEL, model_args={"width": 8}, optimizer="adamw", lr=0.003, **overrides)


def test_a_lab_model_on_signals_resumes_bit_identical_after_sigusr1(processed_signals, tmp_path):
    params = lab_hparams(epochs=6, batch_size=8)
    reference = train(tmp_path / "reference", processed_signals, params)
    assert f"training reference: {LAB_MODEL} on cpu" in reference.log
    assert json.loads((tmp_path / "reference" / "out" / "run_config.json").read_text())["dataset"]["shape"] == [6, 128]

    run_dir = tmp_path / "interrupted"
    process = TrainProcess(run_dir, processed_signals, params)
    process.wait_for("epoch 1/6")
    process.process.send_signal(signal.SIGUSR1)
    assert process.finish() == EXIT_CHECKPOINTED, process.log
    resumed = train(run_dir, processed_signals, params)
    assert "resuming" in resumed.log
    assert_same_weights(final_weights(run_dir), final_weights(tmp_path / "reference"))
    pd.testing.assert_frame_equal(deterministic_metrics(run_dir), deterministic_metrics(tmp_path / "reference"))
    assert load_checkpoint(run_dir / "out" / "best.pt")["model_args"] == {"width": 8}


def test_a_lab_model_trains_in_two_ddp_processes(processed_signals, tmp_path):
    env = job_env() | {"MLPIPE_ALLOW_CPU": "1"}
    run = train(tmp_path / "ddp", processed_signals, lab_hparams(epochs=1, batch_size=16), "--gpus", "2", env=env)
    assert "2 process(es)" in run.log
    assert json.loads((tmp_path / "ddp" / "out" / "run_config.json").read_text())["world_size"] == 2


def test_flips_asked_for_signals_stop_the_run_before_any_epoch(processed_signals, tmp_path):
    process = TrainProcess(tmp_path / "flip", processed_signals, lab_hparams(epochs=1, flip=True))
    assert process.finish() == 1
    assert process.log.strip().splitlines()[-1] == (
        "error: AugmentationError: train.flip: random crops and flips need images (C, H, W), but this dataset's "
        "samples have shape (6, 128); set train.flip: false"
    )
    assert "epoch" not in process.log


TINY_LAB_MODEL = """
from torch import nn


def Net(in_channels, num_classes):
    return nn.Linear(in_channels, num_classes)
"""


def test_editing_a_lab_model_file_keeps_its_old_checkpoint_from_being_resumed(lab_project):
    from mlpipe.training.resume import run_fingerprint

    model = lab_project / "model.py"
    model.write_text(TINY_LAB_MODEL)
    params = {"model": "model.py:Net"}
    before = run_fingerprint("run", params, {}, 1, "fp32")
    model.write_text(TINY_LAB_MODEL.replace("nn.Linear", "nn.Bilinear"))
    after = run_fingerprint("run", params, {}, 1, "fp32")
    assert [key for key in before if before[key] != after[key]] == ["model_code"]
