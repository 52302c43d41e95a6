"""Everything a training run records, opened at its start and closed however it ends.

Used as a context manager around the training loop: leaving it normally marks the run
``finished``; leaving it through the checkpoint-and-exit path marks it ``interrupted``; any other
exception marks it ``failed`` with the error. Resource use is measured at the end in every case.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mlpipe.gpuwatch.figures import run_figures
from mlpipe.io import read_json
from mlpipe.layout import RunFiles
from mlpipe.tracking.loggers import EpochLoggers
from mlpipe.tracking.run_record import FAILED, FINISHED, INTERRUPTED, STOPPED, RunRecord, now

log = logging.getLogger(__name__)


class RunTracking:
    def __init__(
        self,
        *,
        run_dir: Path,
        run_id: str,
        hparams: dict,
        provenance: dict,
        requested: dict,
        state_dir: Path,
        tracking: dict,
        resumed: bool,
        device: torch.device,
        exit_code_interrupted: int,
        progress: Callable[[], dict],
        gpu_watch: dict,  # whether the job's GPUs are watched, or why not (mlpipe.gpuwatch)
    ):
        self.files = RunFiles.of(run_dir)
        if not resumed:  # a fresh start: curves of an earlier attempt would be mixed in
            shutil.rmtree(self.files.tensorboard, ignore_errors=True)
        self.started = time.perf_counter()
        self.device, self.exit_code_interrupted, self.progress = device, exit_code_interrupted, progress
        self.record = RunRecord(self.files.run_info, run_id, hparams, provenance, requested, state_dir)
        self.run_id, self.hparams, self.tracking = run_id, hparams, tracking
        progress_now = progress()
        self.train_seconds_before = progress_now["train_seconds"]  # trained by the run's earlier jobs
        rows = progress_now["rows"]
        self.record.update(
            progress=self.progress_record(len(rows), rows[-1]["val_acc"] if rows else None), gpu_watch=gpu_watch
        )
        self.loggers: EpochLoggers | None = None
        self.rung_stop = False

    def epoch(self, row: dict) -> None:
        self.loggers.epoch(row)
        self.record.update(progress=self.progress_record(row["epoch"], row["val_acc"]))

    def progress_record(self, epochs_done: int, val_acc: float | None) -> dict:
        """How far the run has trained, for `make status` while it runs."""
        return {"epochs_done": epochs_done, "epochs": self.hparams["epochs"], "val_acc": val_acc, "updated": now()}

    def __enter__(self) -> RunTracking:
        try:  # a tracker that cannot start is a setup error: fail now, recorded, not hours later
            self.loggers = EpochLoggers(self.tracking, self.files)
            self.loggers.start(self.run_id, self.hparams, self.record)
        except Exception as error:
            self.record.end(FAILED, usage=self.usage(), error=f"{type(error).__name__}: {error}")
            raise
        return self

    def stopped_at_rung(self) -> None:
        """The job ends at a halving rung: the run is stopped, not finished (a later rung may continue it)."""
        self.rung_stop = True

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc is None:
            status = STOPPED if self.rung_stop else FINISHED
        elif isinstance(exc, SystemExit) and exc.code == self.exit_code_interrupted:
            status = INTERRUPTED
        else:
            status = FAILED
        extra = {"error": f"{type(exc).__name__}: {exc}"} if status == FAILED else {}
        self.record.end(status, usage=self.usage(), **extra)
        self.loggers.end(status)
        return False

    def usage(self) -> dict:
        progress = self.progress()
        rows = progress["rows"]
        usage = {
            "wall_seconds": time.perf_counter() - self.started,
            "train_seconds": progress["train_seconds"],
            "job_train_seconds": progress["train_seconds"] - self.train_seconds_before,  # this job's share
            "epochs_done": progress["epoch"],
            "images_per_second": sum(row["images_per_second"] for row in rows) / len(rows) if rows else None,
            "peak_host_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **run_figures(rows, self.hparams["batch_size"]),  # GPU utilisation, memory, power, data wait, flag
        }
        if self.device.type == "cuda":
            usage["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return usage


def record_failed_start(
    run_dir: Path, run_id: str, hparams: dict, provenance: dict, requested: dict, error: BaseException
) -> None:
    """run_info.json of a run that failed before it could start training: status failed, with the error.

    Best effort: a run folder that cannot be written must not hide the error being recorded.
    """
    try:
        record = RunRecord(RunFiles.of(run_dir).run_info, run_id, hparams, provenance, requested)
        record.end(FAILED, error=f"{type(error).__name__}: {error}")
    except (OSError, ValueError) as record_error:
        log.warning("could not record the failure in %s: %s", RunFiles.of(run_dir).run_info, record_error)


def record_finished_again(
    run_dir: Path, run_id: str, hparams: dict, provenance: dict, requested: dict, state_dir: Path
) -> None:
    """run_info.json of a run whose outputs were written again from its finished state, without training.

    A record that says finished describes the job that trained the run and stays as it is; otherwise (the
    trainer died before it could say so, or the record is gone) a record says finished.
    """
    files = RunFiles.of(run_dir)
    with contextlib.suppress(OSError, ValueError):
        if read_json(files.run_info).get("status") == FINISHED:
            return
    record = RunRecord(files.run_info, run_id, hparams, provenance, requested, state_dir)
    record.end(FINISHED, outputs_written_from=str(state_dir))


class NoTracking:
    """What ranks other than 0 of a multi-GPU run use: rank 0 records for all."""

    def epoch(self, row: dict) -> None:
        pass

    def __enter__(self) -> NoTracking:
        return self

    def __exit__(self, *exc_info) -> bool:
        return False
