"""Train one run, resumably: the loop a reader can follow top to bottom.

A run keeps two sets of files:
- its state folder (under ``checkpoint_root``, never a declared Snakemake output, so a failed job
  does not delete it): ``resume.pt`` with everything needed to continue, and the best epoch's weights;
- its outputs (:class:`~mlpipe.training.outputs.TrainOutputs`): the declared files, written only when
  training completes, and the records it keeps while it trains (``run_info.json``, ``tensorboard/``).

A rerun finds ``resume.pt`` and continues where the last attempt stopped, provided the run is the same
(see :mod:`mlpipe.training.resume`); otherwise it starts fresh. On the CPU an interrupted and resumed
run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mlpipe.device import Precision, choose_device, choose_precision, device_name
from mlpipe.gpuwatch.data_wait import DataWaitClock
from mlpipe.gpuwatch.figures import log_run_figures
from mlpipe.gpuwatch.watch import watch_job_gpus
from mlpipe.history.store import new_version_id
from mlpipe.history.versions import keep_version
from mlpipe.inference import evaluate_model
from mlpipe.layout import RESUME_NAME, STATE_BEST_NAME
from mlpipe.models.factory import build_model
from mlpipe.processed import Normalizer, load_meta, load_split
from mlpipe.recovery.run_lock import hold_run
from mlpipe.tracking.loggers import DEFAULT_TRACKING
from mlpipe.tracking.provenance import collect_provenance
from mlpipe.tracking.session import NoTracking, RunTracking, record_failed_start, record_finished_again
from mlpipe.training.checkpoint import save_checkpoint
from mlpipe.training.data import Augmentation, TrainBatches, fits_on_device, to_device_tensor
from mlpipe.training.distributed import ProcessGroup, any_across, barrier, init_process_group, shutdown, sum_across
from mlpipe.training.engine import Engine
from mlpipe.training.model_check import check_model_fits
from mlpipe.training.outputs import TrainOutputs, finished_run_config, weights, write_outputs, write_rung_record
from mlpipe.training.preflight import check_batch_size, check_state_folder
from mlpipe.training.progress import EpochSums, Progress
from mlpipe.training.resume import load_resumable, restore_rng_state, run_fingerprint, save_resumable
from mlpipe.training.signals import EXIT_CHECKPOINTED, StopRequest

log = logging.getLogger(__name__)

# Steps between checks that wait for the GPU: the loss is finite (on a GPU), a stop was requested (with DDP).
POLL_EVERY = 25


@dataclass
class TrainJob:
    """One training job: the run, where its files go, and what its scheduler job gave it."""

    run_id: str
    hparams: dict
    processed_dir: Path
    outputs: TrainOutputs
    state_dir: Path
    gpus: int = 0  # GPUs the job asked for (0: use one if present)
    threads: int | None = None
    allow_cpu: bool = False  # a job that asked for GPUs may train on the CPU when it sees none
    local_rank: int = 0  # this process's GPU among the job's (torchrun's LOCAL_RANK)
    world_size: int = 1  # processes training the run together (torchrun's WORLD_SIZE)
    scheduler_job: dict = field(default_factory=dict)  # the SLURM job it runs in (id, partition, modules)
    requested: dict = field(default_factory=dict)  # what the scheduler job asked for, recorded with its use
    tracking: dict = field(default_factory=lambda: DEFAULT_TRACKING)
    code_dir: Path = Path(".")  # the checkout whose git commit is recorded
    history_dir: Path | None = None  # where the finished version is kept (mlpipe.history); None: nowhere
    # Successive halving (mlpipe.search.halving): train to this epoch, keep the state, write the rung's record.
    stop_after_epoch: int | None = None
    rung_record: Path | None = None
    budget_may_grow: bool = False  # resume a state saved under another train.epochs (a halving study's rungs)


@dataclass
class Run:
    """A run set up to train: device, data, model and optimizer state."""

    device: torch.device
    group: ProcessGroup
    precision: Precision
    meta: dict
    normalizer: Normalizer
    batches: TrainBatches
    val_images: object  # a device tensor, or a memory-mapped array when the data is streamed
    val_labels: object
    engine: Engine
    fingerprint: dict

    @property
    def steps(self) -> int:
        return self.batches.steps_per_epoch


def train_run(job: TrainJob) -> Progress:
    """Train (or resume) one run."""
    with StopRequest() as stop:  # from the start: a signal during set-up is honoured at the first step
        run = set_up_or_record_failure(job)
        hparams, steps, group = job.hparams, run.steps, run.group
        progress, epoch_sums = resume_or_start(job, run)
        stop_at = job.stop_after_epoch or hparams["epochs"]  # a rung of successive halving stops early
        if job.rung_record is not None and progress.epoch >= stop_at:  # this rung was trained before
            if group.is_main:
                write_rung_record(job.rung_record, job.run_id, progress.rows, stop_at)
            shutdown(group)
            return progress
        if progress.finished:  # this very run, trained to the end before: its outputs again, no training
            if group.is_main:
                finish(job, run, progress)
                record_restored(job, run)
            shutdown(group)
            return progress
        log_start(job, run)
        with (
            watch_job_gpus(run.device, group.world_size, group.is_main) as gpu_watch,
            open_tracking(job, run, progress, gpu_watch.status) as tracking,
        ):
            for epoch in range(progress.epoch, stop_at):
                plan = run.batches.plan(epoch)
                sums = EpochSums(steps, run.device, epoch_sums if group.is_main else None)  # saved summed over ranks
                epoch_sums = None
                run.engine.model.train()
                data_wait = DataWaitClock()
                gpu_watch.start_epoch()
                started = time.perf_counter()
                for step in range(progress.step, steps):
                    images, labels = data_wait.batch(run.batches, plan, step)
                    loss, logits = run.engine.step(images, labels)
                    sums.add(step, loss, logits, labels)
                    if finite_check_due(run, step):
                        sums.check_finite(epoch, step + 1)
                    if stop_agreed(stop, run, step):
                        progress.step = step + 1
                        progress.train_seconds += time.perf_counter() - started
                        checkpoint(job, run, progress, sum_across(sums.table.clone(), group).cpu())
                        exit_checkpointed(stop, progress, group)
                if run.device.type == "cuda":
                    torch.cuda.synchronize(run.device)
                epoch_seconds = time.perf_counter() - started
                progress.train_seconds += epoch_seconds
                watched = {"data_wait_share": data_wait.share_of(epoch_seconds), **gpu_watch.epoch_figures()}
                row = end_of_epoch(job, run, progress, sums, epoch, epoch_seconds, watched)
                tracking.epoch(row)
                progress.complete_epoch(row, hparams["epochs"])
                if progress.finished:  # named before it is saved: the version is the same if written again
                    progress.version = new_version_id()
                stopping = any_across(stop.requested, group, run.device)
                at_end = progress.finished or progress.epoch == stop_at
                if stopping or progress.epoch % hparams["checkpoint_every"] == 0 or at_end:
                    checkpoint(job, run, progress)
                if stopping and not at_end:
                    exit_checkpointed(stop, progress, group)
            if group.is_main:
                log_run_figures(progress.rows, hparams["batch_size"])
                if progress.finished:
                    finish(job, run, progress)
                else:  # its rung's end: the next rung, if it is promoted, continues from the state just saved
                    write_rung_record(job.rung_record, job.run_id, progress.rows, stop_at)
                    tracking.stopped_at_rung()
    shutdown(group)
    return progress


def check_device(job: TrainJob) -> None:
    """The job's GPUs are there and this build has kernels for them (or it may use the CPU); else record and raise.

    The process the scheduler started runs this before it copies the data to $TMPDIR or starts any
    worker, so that a job on the wrong node or with the wrong build stops in seconds.
    """
    with failure_recorded(job):
        choose_device(job.gpus, job.local_rank, job.allow_cpu)


@contextmanager
def holding_the_run(job: TrainJob) -> Iterator[None]:
    """Hold the run's state folder for this process's life: a second live trainer of the run stops at once.

    A folder that cannot be written is a set-up failure (recorded in run_info.json); a run held by another
    process is not this job's to record anything about.
    """
    with failure_recorded(job):
        check_state_folder(job.state_dir)  # resume.pt is saved there every epoch
    with hold_run(job.state_dir, job.run_id, job.scheduler_job.get("slurm_job_id")):
        yield


def set_up_or_record_failure(job: TrainJob) -> Run:
    """:func:`set_up`; when it fails (e.g. a check of the set-up), run_info.json says why, as for a failure later on."""
    with failure_recorded(job):
        return set_up(job)


@contextmanager
def failure_recorded(job: TrainJob) -> Iterator[None]:
    """An error raised inside is recorded in run_info.json (by rank 0) and raised again."""
    try:
        yield
    except Exception as error:
        if job.local_rank == 0:
            provenance = collect_provenance(job.code_dir, None, job.scheduler_job)
            record_failed_start(job.outputs.run_dir, job.run_id, job.hparams, provenance, job.requested, error)
        raise


def finite_check_due(run: Run, step: int) -> bool:
    """On a GPU the check waits for it, so it runs every POLL_EVERY steps and at the end of the epoch."""
    return run.device.type == "cpu" or (step + 1) % POLL_EVERY == 0 or step + 1 == run.steps


def stop_agreed(stop: StopRequest, run: Run, step: int) -> bool:
    """Whether to stop after ``step``: one process polls its own flag every step, ranks agree every POLL_EVERY.

    The last step of an epoch is left to the epoch's end, which checks anyway.
    """
    if step + 1 == run.steps or (run.group.distributed and (step + 1) % POLL_EVERY):
        return False
    return any_across(stop.requested, run.group, run.device)


def set_up(job: TrainJob) -> Run:
    """Device, process group, precision, data on its way to the device, model and engine."""
    hparams = job.hparams
    device = choose_device(job.gpus, job.local_rank, job.allow_cpu)
    group = init_process_group(device.type == "cuda", job.local_rank, job.world_size)
    if not group.is_main:
        logging.getLogger("mlpipe").setLevel(logging.WARNING)  # one log per run, from rank 0
    configure_torch(device, job.threads)
    precision = choose_precision(device, hparams["precision"])
    meta = load_meta(job.processed_dir)
    check_batch_size(hparams["batch_size"], meta["counts"]["train"], meta["dataset"])
    augmentation = Augmentation.for_samples(hparams, meta["shape"])  # before any work: crop/flip need images
    train_images, train_labels = load_split(job.processed_dir, "train")
    val_images, val_labels = load_split(job.processed_dir, "val")
    on_device = fits_on_device(train_images.nbytes + val_images.nbytes, device, hparams["gpu_memory_headroom"])
    normalizer = Normalizer.of(meta, device, channels_last=device.type == "cuda")
    batches = TrainBatches(
        train_images,
        train_labels,
        batch_size=hparams["batch_size"],
        device=device,
        normalizer=normalizer,
        augmentation=augmentation,
        seed=hparams["seed"],
        rank=group.rank,
        world_size=group.world_size,
        on_device=on_device,
    )
    if on_device:
        val_images, val_labels = to_device_tensor(val_images, device), torch.from_numpy(val_labels).to(device)
    torch.manual_seed(hparams["seed"])
    model = build_model(
        hparams["model"],
        meta["shape"][0],
        meta["num_classes"],
        input_shape=meta["shape"],
        model_args=hparams["model_args"],
    )
    engine = Engine.build(model, hparams, device, precision, batches.steps_per_epoch, group)
    sample = normalizer(to_device_tensor(train_images[:2], device))
    check_model_fits(engine.model, hparams["model"], sample, meta["num_classes"], precision)
    fingerprint = run_fingerprint(job.run_id, hparams, meta, group.world_size, precision.name, job.budget_may_grow)
    return Run(device, group, precision, meta, normalizer, batches, val_images, val_labels, engine, fingerprint)


def resume_or_start(job: TrainJob, run: Run) -> tuple[Progress, torch.Tensor | None]:
    """Continue from ``resume.pt`` when it holds this run; return the progress and a stopped epoch's sums."""
    state = load_resumable(job.state_dir / RESUME_NAME, run.fingerprint, set_aside=run.group.is_main)
    if state is None:
        if run.group.is_main:
            (job.state_dir / STATE_BEST_NAME).unlink(missing_ok=True)  # the best epoch of an earlier run
        return Progress(), None
    run.engine.load_state_dict(state["engine"])
    restore_rng_state(state["rng"], run.device)
    progress = Progress(**state["progress"])
    progress.finished = progress.epoch >= job.hparams["epochs"]  # the budget may have grown since (halving)
    if progress.finished:
        log.info("%s holds this run, finished: writing its outputs again without training", job.state_dir)
    elif job.stop_after_epoch is not None and progress.epoch >= job.stop_after_epoch:
        log.info("%s holds this run past epoch %d: its rung is trained", job.state_dir, job.stop_after_epoch)
    else:
        log.info("resuming %s at epoch %d, step %d", job.run_id, progress.epoch + 1, progress.step)
    return progress, state["epoch_sums"]


def record_restored(job: TrainJob, run: Run) -> None:
    """run_info.json of a run whose outputs were written again from its finished state."""
    provenance = collect_provenance(job.code_dir, device_name(run.device), job.scheduler_job)
    record_finished_again(job.outputs.run_dir, job.run_id, job.hparams, provenance, job.requested, job.state_dir)


def log_start(job: TrainJob, run: Run) -> None:
    log.info(
        "training %s: %s on %s (%s, %d process(es)), %d epochs x %d steps, data %s",
        job.run_id,
        job.hparams["model"],
        device_name(run.device),
        run.precision.name,
        run.group.world_size,
        job.hparams["epochs"],
        run.steps,
        "on device" if run.batches.on_device else "streamed from host memory",
    )


def open_tracking(job: TrainJob, run: Run, progress: Progress, gpu_watch: dict) -> RunTracking | NoTracking:
    """Rank 0 records the run (run_info.json, TensorBoard, MLflow, W&B); other ranks record nothing.

    ``gpu_watch``: whether the job's GPUs are watched, or why not (mlpipe.gpuwatch)."""
    if not run.group.is_main:
        return NoTracking()
    return RunTracking(
        run_dir=job.outputs.run_dir,
        run_id=job.run_id,
        hparams=job.hparams,
        provenance=collect_provenance(job.code_dir, device_name(run.device), job.scheduler_job),
        requested=job.requested,
        state_dir=job.state_dir,
        tracking=job.tracking,
        resumed=progress.started,
        device=run.device,
        exit_code_interrupted=EXIT_CHECKPOINTED,
        progress=lambda: asdict(progress),
        gpu_watch=gpu_watch,
    )


def end_of_epoch(
    job: TrainJob, run: Run, progress: Progress, sums: EpochSums, epoch: int, seconds: float, watched: dict
) -> dict:
    """The epoch's metrics row (every rank); rank 0 also validates, logs, tracks and keeps the best weights.

    ``watched``: the epoch's data-wait share and GPU figures (mlpipe.gpuwatch), in rank 0's row."""
    loss_sum, correct, count = sum_across(sums.totals(), run.group).tolist()
    row = {"epoch": epoch + 1, "train_loss": loss_sum / count, "train_acc": correct / count}
    if not run.group.is_main:
        return row
    val_loss, val_acc = evaluate_model(
        run.engine.eval_model,
        run.val_images,
        run.val_labels,
        job.hparams["eval_batch_size"],
        run.device,
        run.normalizer,
        run.precision,
    )
    row |= {
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": run.engine.scheduler.get_last_lr()[0],
        "epoch_seconds": seconds,
        "images_per_second": count / seconds,
        **watched,
    }
    log.info(
        "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.4g  %.2fs  %.0f img/s",
        *(row["epoch"], job.hparams["epochs"], row["train_loss"], row["train_acc"], val_loss, val_acc),
        *(row["lr"], seconds, row["images_per_second"]),
    )
    if progress.improves(val_acc, val_loss):
        progress.best_val_acc, progress.best_val_loss, progress.best_epoch = val_acc, val_loss, epoch + 1
        save_checkpoint(job.state_dir / STATE_BEST_NAME, run_weights(job, run, epoch + 1, val_acc))
    return row


def checkpoint(job: TrainJob, run: Run, progress: Progress, epoch_sums: torch.Tensor | None = None) -> None:
    """Save resumable state (rank 0; the others hold the same)."""
    if run.group.is_main:
        save_resumable(
            job.state_dir / RESUME_NAME, run.fingerprint, progress, run.engine.state_dict(), run.device, epoch_sums
        )


def exit_checkpointed(stop: StopRequest, progress: Progress, group: ProcessGroup) -> None:
    log.warning(
        "stopped on %s after epoch %d step %d; state saved, rerun to resume",
        stop.signal_name or "another rank's request",
        progress.epoch,
        progress.step,
    )
    barrier(group)  # no rank leaves before rank 0 has saved: torchrun stops the others when one exits
    shutdown(group)
    sys.exit(EXIT_CHECKPOINTED)


def finish(job: TrainJob, run: Run, progress: Progress) -> None:
    """Keep the finished version in the history and write the declared outputs of the run."""
    progress.version = progress.version or new_version_id()  # a state saved before runs had versions
    run_config = {
        "run_id": job.run_id,
        "hparams": job.hparams,
        "dataset": {key: run.meta[key] for key in ("dataset", "num_classes", "shape", "counts", "split")},
        "device": device_name(run.device),
        "precision": run.precision.name,
        "world_size": run.group.world_size,
        "torch_threads": torch.get_num_threads(),  # CPU results depend on it: rerun with the same to compare
    }
    run_config = finished_run_config(run_config, progress)
    best = job.state_dir / STATE_BEST_NAME
    if job.history_dir is not None:  # first: a run whose outputs exist is in the history
        provenance = collect_provenance(job.code_dir, device_name(run.device), job.scheduler_job)
        keep_version(job.history_dir, run_config, progress.rows, provenance, run.meta, best)
    last = run_weights(job, run, progress.epoch, progress.rows[-1]["val_acc"])
    write_outputs(job.outputs, best, last, progress, run_config)


def run_weights(job: TrainJob, run: Run, epoch: int, val_acc: float) -> dict:
    return weights(run.engine.eval_model, job.hparams, run.meta, epoch, val_acc)


def configure_torch(device: torch.device, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    # On the CPU, PyTorch's kernels are deterministic for a fixed thread count, so the same config
    # and seed give the same numbers (tested); torch.use_deterministic_algorithms is not needed and
    # would cost seconds of start-up importing the compiler stack.
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
