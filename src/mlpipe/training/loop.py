"""Train one run, resumably: the loop a reader can follow top to bottom.

Files of a run:
- ``state_dir`` (under ``checkpoint_root``, never a declared Snakemake output, so a failed job
  does not delete it): ``resume.pt`` with everything needed to continue, and ``best.pt``;
- ``out_dir``: the declared outputs, written only when training completes (``metrics.csv``,
  ``best.pt``, ``last.pt``, ``run_config.json``), and what the run records while it trains
  (``run_info.json``, ``tensorboard/``; see :mod:`mlpipe.tracking`).

A rerun finds ``resume.pt`` and continues where the last attempt stopped, provided the
hyperparameters, the data and the model/training code are unchanged; otherwise it starts
fresh. On the CPU an interrupted and resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mlpipe.io import atomic_path, write_csv, write_json
from mlpipe.models.registry import build_model
from mlpipe.tracking.loggers import tracking_from_env
from mlpipe.tracking.provenance import collect_provenance
from mlpipe.tracking.session import NoTracking, RunTracking
from mlpipe.training.checkpoint import code_fingerprint, load_checkpoint, save_checkpoint
from mlpipe.training.data import (
    Augmentation,
    Normalizer,
    TrainBatches,
    fits_on_device,
    load_meta,
    load_split,
    to_device_tensor,
)
from mlpipe.training.device import choose_device, choose_precision, device_name
from mlpipe.training.distributed import any_across, barrier, init_process_group, shutdown, sum_across
from mlpipe.training.engine import Engine
from mlpipe.training.evaluation import evaluate_model
from mlpipe.training.signals import EXIT_CHECKPOINTED, StopRequest

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"]
CODE_PACKAGES = ("mlpipe.models", "mlpipe.training")  # a checkpoint resumes only under the same code
RESUME_NAME, BEST_NAME, LAST_NAME = "resume.pt", "best.pt", "last.pt"
# Steps between checks that wait for the GPU: the loss is finite (on a GPU), a stop was requested (with DDP).
POLL_EVERY = 25


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class RunPaths:
    processed_dir: Path
    out_dir: Path
    state_dir: Path


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed within the current epoch
    rows: list = field(default_factory=list)  # one metrics row per completed epoch
    best_val_acc: float = -1.0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    train_seconds: float = 0.0
    finished: bool = False


def train_run(
    run_id: str,
    hparams: dict,
    paths: RunPaths,
    *,
    gpus: int = 0,
    threads: int | None = None,
    allow_cpu: bool = False,
    requested: dict | None = None,
) -> Progress:
    """Train (or resume) one run; ``requested`` is what its scheduler job asked for, recorded with its usage."""
    device = choose_device(gpus, int(os.environ.get("LOCAL_RANK", "0")), allow_cpu)
    group = init_process_group(device.type == "cuda")
    if not group.is_main:
        logging.getLogger("mlpipe").setLevel(logging.WARNING)  # one log per run, from rank 0
    _configure_torch(device, threads)
    precision = choose_precision(device, hparams["precision"])
    meta = load_meta(paths.processed_dir)
    train_images, train_labels = load_split(paths.processed_dir, "train")
    val_images, val_labels = load_split(paths.processed_dir, "val")
    on_device = fits_on_device(train_images.nbytes + val_images.nbytes, device, hparams["gpu_memory_headroom"])
    normalizer = Normalizer(meta["mean"], meta["std"], device, channels_last=device.type == "cuda")
    batches = TrainBatches(
        train_images,
        train_labels,
        batch_size=hparams["batch_size"],
        device=device,
        normalizer=normalizer,
        augmentation=Augmentation(hparams["crop_padding"], hparams["flip"]),
        seed=hparams["seed"],
        rank=group.rank,
        world_size=group.world_size,
        on_device=on_device,
    )
    if on_device:
        val_images, val_labels = to_device_tensor(val_images, device), torch.from_numpy(val_labels).to(device)
    torch.manual_seed(hparams["seed"])
    model = build_model(hparams["model"], meta["shape"][0], meta["num_classes"])
    engine = Engine.build(model, hparams, device, precision, batches.steps_per_epoch, group)

    fingerprint = {
        "run_id": run_id,
        "hparams": hparams,
        "data": meta,
        "code": code_fingerprint(*CODE_PACKAGES),
        "world_size": group.world_size,
        "precision": precision.name,  # e.g. a bf16 state resumed on a V100 (fp16 + scaler) would not load
    }
    progress, partial = Progress(), None
    resume_path = paths.state_dir / RESUME_NAME
    state = _load_resumable(resume_path, fingerprint)
    if state is not None:
        engine.load_state_dict(state["engine"])
        _set_rng_state(state["rng"], device)
        progress, partial = Progress(**state["progress"]), state["partial"]
        log.info("resuming %s at epoch %d, step %d", run_id, progress.epoch + 1, progress.step)
    elif group.is_main:
        (paths.state_dir / BEST_NAME).unlink(missing_ok=True)

    def checkpoint(partial_sums=None) -> None:
        if group.is_main:
            save_checkpoint(
                resume_path,
                {
                    "fingerprint": fingerprint,
                    "progress": asdict(progress),
                    "partial": partial_sums,
                    "engine": engine.state_dict(),
                    "rng": _rng_state(device),
                },
            )

    steps = batches.steps_per_epoch
    log.info(
        "training %s: %s on %s (%s, %d process(es)), %d epochs x %d steps, data %s",
        run_id,
        hparams["model"],
        device_name(device),
        precision.name,
        group.world_size,
        hparams["epochs"],
        steps,
        "on device" if on_device else "streamed from host memory",
    )
    tracking = (
        RunTracking(
            run_dir=paths.out_dir,
            run_id=run_id,
            hparams=hparams,
            provenance=collect_provenance(Path.cwd(), device_name(device)),
            requested=requested or {},
            tracking=tracking_from_env(),
            resumed=state is not None,
            device=device,
            exit_code_interrupted=EXIT_CHECKPOINTED,
            progress=lambda: asdict(progress),
        )
        if group.is_main
        else NoTracking()
    )
    with tracking, StopRequest() as stop:
        for epoch in range(progress.epoch, hparams["epochs"]):
            plan = batches.plan(epoch)
            sums = torch.zeros(3, steps, dtype=torch.float64, device=device)  # loss * n, correct, n per step
            if partial is not None and group.is_main:  # saved summed over ranks: restore it once
                sums.copy_(partial.to(device))
            partial = None
            engine.model.train()
            started = time.perf_counter()
            for step in range(progress.step, steps):
                images, labels = batches.batch(plan, step)
                loss, logits = engine.step(images, labels)
                sums[0, step] = loss * len(labels)
                sums[1, step] = (logits.argmax(1) == labels).sum()
                sums[2, step] = len(labels)
                poll = (step + 1) % POLL_EVERY == 0
                if device.type == "cpu" or poll or step + 1 == steps:
                    _check_finite(sums[0, : step + 1], sums[2, : step + 1], epoch, steps)
                # One process polls its own flag every step; ranks agree only every POLL_EVERY steps.
                if step + 1 < steps and (poll or not group.distributed) and any_across(stop.requested, group, device):
                    progress.step = step + 1
                    progress.train_seconds += time.perf_counter() - started
                    checkpoint(sum_across(sums.clone(), group).cpu())
                    _exit_checkpointed(stop, progress, group)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            epoch_seconds = time.perf_counter() - started
            progress.train_seconds += epoch_seconds
            totals = sum_across(sums.sum(dim=1), group)
            row = {
                "epoch": epoch + 1,
                "train_loss": (totals[0] / totals[2]).item(),
                "train_acc": (totals[1] / totals[2]).item(),
            }
            if group.is_main:
                val_loss, val_acc = evaluate_model(
                    engine.eval_model, val_images, val_labels, hparams["eval_batch_size"], device, normalizer, precision
                )
                row.update(
                    val_loss=val_loss,
                    val_acc=val_acc,
                    lr=engine.scheduler.get_last_lr()[0],
                    epoch_seconds=epoch_seconds,
                    images_per_second=float(totals[2]) / epoch_seconds,
                )
                log.info(
                    "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.4g  %.2fs  %.0f img/s",
                    epoch + 1,
                    hparams["epochs"],
                    row["train_loss"],
                    row["train_acc"],
                    val_loss,
                    val_acc,
                    row["lr"],
                    epoch_seconds,
                    row["images_per_second"],
                )
                tracking.epoch(row)
                # Small validation sets tie on accuracy; the lower loss breaks the tie.
                if (val_acc, -val_loss) > (progress.best_val_acc, -progress.best_val_loss):
                    progress.best_val_acc, progress.best_val_loss, progress.best_epoch = val_acc, val_loss, epoch + 1
                    weights = _weights(engine.eval_model, hparams, meta, epoch + 1, val_acc)
                    save_checkpoint(paths.state_dir / BEST_NAME, weights)
            progress.rows.append(row)
            progress.epoch, progress.step = epoch + 1, 0
            stopping = any_across(stop.requested, group, device)
            if stopping or progress.epoch % hparams["checkpoint_every"] == 0 or progress.epoch == hparams["epochs"]:
                progress.finished = progress.epoch == hparams["epochs"]
                checkpoint()
            if stopping and not progress.finished:
                _exit_checkpointed(stop, progress, group)
        if group.is_main:
            _write_outputs(
                run_id, hparams, meta, paths, progress, engine.eval_model, device, precision, group.world_size
            )
    shutdown(group)
    return progress


def _load_resumable(resume_path: Path, fingerprint: dict) -> dict | None:
    if not resume_path.exists():
        return None
    state = load_checkpoint(resume_path)
    if state["progress"]["finished"]:
        log.info("%s holds a finished run: training again from scratch", resume_path)
        return None
    changed = [key for key in fingerprint if state["fingerprint"].get(key) != fingerprint[key]]
    if changed:
        log.warning("not resuming from %s: %s changed since it was saved", resume_path, ", ".join(changed))
        return None
    return state


def _exit_checkpointed(stop: StopRequest, progress: Progress, group) -> None:
    log.warning(
        "stopped on %s after epoch %d step %d; state saved, rerun to resume",
        stop.signal_name or "another rank's request",
        progress.epoch,
        progress.step,
    )
    barrier(group)  # no rank leaves before rank 0 has saved: torchrun stops the others when one exits
    shutdown(group)
    sys.exit(EXIT_CHECKPOINTED)


def _check_finite(loss_sums: torch.Tensor, counts: torch.Tensor, epoch: int, steps: int) -> None:
    finite = torch.isfinite(loss_sums) | (counts == 0)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0])
        raise NonFiniteLossError(
            f"training loss is {loss_sums[step].item()} at epoch {epoch + 1}, step {step + 1} "
            f"(global step {epoch * steps + step + 1}); lower train.lr or use train.precision: fp32"
        )


def _weights(model: torch.nn.Module, hparams: dict, meta: dict, epoch: int, val_acc: float) -> dict:
    """A self-describing weights file: enough to rebuild the model and normalise its inputs."""
    return {
        "model": hparams["model"],
        "in_channels": meta["shape"][0],
        "num_classes": meta["num_classes"],
        "classes": meta["classes"],
        "mean": meta["mean"],
        "std": meta["std"],
        "epoch": epoch,
        "val_acc": val_acc,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }


def _write_outputs(
    run_id, hparams, meta, paths: RunPaths, progress: Progress, model, device, precision, world_size
) -> None:
    write_csv(paths.out_dir / "metrics.csv", progress.rows, METRIC_FIELDS)
    last = progress.rows[-1]
    save_checkpoint(paths.out_dir / LAST_NAME, _weights(model, hparams, meta, progress.epoch, last["val_acc"]))
    with atomic_path(paths.out_dir / BEST_NAME) as tmp:
        shutil.copyfile(paths.state_dir / BEST_NAME, tmp)
    write_json(
        paths.out_dir / "run_config.json",
        {
            "run_id": run_id,
            "hparams": hparams,
            "dataset": {key: meta[key] for key in ("dataset", "num_classes", "shape", "counts", "split")},
            "device": device_name(device),
            "precision": precision.name,
            "world_size": world_size,
            "torch_threads": torch.get_num_threads(),  # CPU results depend on it: rerun with the same to compare
            "best_epoch": progress.best_epoch,
            "best_val_acc": progress.best_val_acc,
            "best_val_loss": progress.best_val_loss,
            "train_seconds": progress.train_seconds,
            "torch": torch.__version__,
        },
    )


def _configure_torch(device: torch.device, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    # On the CPU, PyTorch's kernels are deterministic for a fixed thread count, so the same config
    # and seed give the same numbers (tested); torch.use_deterministic_algorithms is not needed and
    # would cost seconds of start-up importing the compiler stack.
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
