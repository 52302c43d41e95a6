"""Per-epoch metrics to TensorBoard and, when installed and enabled, MLflow and Weights & Biases.

Settings come from the config's ``tracking`` section, resolved by :func:`mlpipe.config.tracking_settings`
and handed to training jobs in the environment (so that turning a tracker on never reruns a finished
job). Both optional trackers work offline (an MLflow file store, W&B offline mode), since compute nodes
may have no internet.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from mlpipe.layout import RunFiles

log = logging.getLogger(__name__)

DEFAULT_TRACKING = {"tensorboard": True, "mlflow": {"enabled": False}, "wandb": {"enabled": False}}
# TensorBoard's tags of the per-epoch columns that are empty where not measured (mlpipe.gpuwatch).
MEASURED_SCALARS = {
    "data_wait_share": "time/data_wait_share",
    "gpu_util": "gpu/utilisation",
    "gpu_memory_mb": "gpu/memory_mb",
    "gpu_power_w": "gpu/power_w",
}


def measured(row: dict) -> dict:
    """The row without its empty values (a GPU column of a run without a GPU): trackers take numbers only."""
    return {key: value for key, value in row.items() if value is not None}


class TensorBoardLogger:
    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def start(self, run_id: str, hparams: dict, record) -> None:
        self.writer.add_text("hparams", json.dumps(hparams, indent=2), 0)

    def epoch(self, row: dict) -> None:
        step = row["epoch"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            self.writer.add_scalar(key.replace("_", "/", 1), row[key], step)
        self.writer.add_scalar("lr", row["lr"], step)
        self.writer.add_scalar("throughput/images_per_second", row["images_per_second"], step)
        self.writer.add_scalar("time/epoch_seconds", row["epoch_seconds"], step)
        for key, tag in MEASURED_SCALARS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], step)
        self.writer.flush()

    def end(self, status: str) -> None:
        self.writer.close()


class MlflowLogger:
    """One MLflow run per pipeline run; a resumed run continues the same MLflow run."""

    def __init__(self, settings: dict):
        # MLflow's file store keeps one folder per run: the safe choice when many jobs on a shared
        # filesystem log at once (a SQLite file there can lock). MLflow 3 wants it asked for explicitly.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        import mlflow

        self.mlflow = mlflow
        uri = settings["tracking_uri"]
        mlflow.set_tracking_uri(uri)
        with _one_at_a_time(uri):
            self.experiment_id = mlflow.set_experiment(settings["experiment"]).experiment_id

    def start(self, run_id: str, hparams: dict, record) -> None:
        previous = record.info["trackers"].get("mlflow_run_id")
        if previous:
            run = self.mlflow.start_run(run_id=previous)
        else:
            run = self.mlflow.start_run(run_name=run_id, experiment_id=self.experiment_id)
            self.mlflow.log_params(hparams)
        record.info["trackers"]["mlflow_run_id"] = run.info.run_id

    def epoch(self, row: dict) -> None:
        metrics = {key: float(value) for key, value in measured(row).items() if key != "epoch"}
        self.mlflow.log_metrics(metrics, step=row["epoch"])

    def end(self, status: str) -> None:
        self.mlflow.end_run(
            status="FINISHED" if status == "finished" else "KILLED" if status == "interrupted" else "FAILED"
        )


@contextmanager
def _one_at_a_time(uri: str):
    """Exclusive among jobs for a file store, whose name check is not atomic: jobs starting together would each
    create the experiment and log to different ones. (A tracking server checks names itself.)"""
    if urlparse(uri).scheme != "file":
        yield
        return
    store = Path(urlparse(uri).path)
    store.mkdir(parents=True, exist_ok=True)
    with (store / ".mlpipe-experiment.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class WandbLogger:
    """One W&B run per pipeline run (a stable id, resumed after an interruption); offline by default."""

    def __init__(self, settings: dict, run_dir: Path):
        import wandb

        self.wandb, self.settings, self.run_dir = wandb, settings, run_dir
        self.run = None

    def start(self, run_id: str, hparams: dict, record) -> None:
        stable_id = hashlib.sha1(f"{self.settings['project']}/{run_id}".encode()).hexdigest()[:16]
        self.run = self.wandb.init(
            project=self.settings["project"],
            name=run_id,
            id=stable_id,
            resume="allow",
            mode=self.settings.get("mode", "offline"),
            dir=str(self.run_dir),  # W&B writes into <run dir>/wandb
            config=hparams,
        )
        record.info["trackers"]["wandb_run_id"] = stable_id

    def epoch(self, row: dict) -> None:
        self.run.log({key: value for key, value in measured(row).items() if key != "epoch"}, step=row["epoch"])

    def end(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


class EpochLoggers:
    """Every enabled logger, called together. A logger that fails mid-run is dropped with a warning:
    a tracker's hiccup must not end hours of training (metrics.csv and run_info.json still record all)."""

    def __init__(self, tracking: dict, files: RunFiles):
        self.loggers = []
        if tracking.get("tensorboard", True):
            self.loggers.append(TensorBoardLogger(files.tensorboard))
        if tracking.get("mlflow", {}).get("enabled"):
            self.loggers.append(MlflowLogger(tracking["mlflow"]))
        if tracking.get("wandb", {}).get("enabled"):
            self.loggers.append(WandbLogger(tracking["wandb"], files.folder))

    def start(self, run_id: str, hparams: dict, record) -> None:
        for logger in self.loggers:
            logger.start(run_id, hparams, record)
        record.update()

    def epoch(self, row: dict) -> None:
        for logger in list(self.loggers):
            try:
                logger.epoch(row)
            except Exception:
                log.exception("%s failed; no more epochs go to it", type(logger).__name__)
                self.loggers.remove(logger)

    def end(self, status: str) -> None:
        for logger in self.loggers:
            try:
                logger.end(status)
            except Exception:  # a tracker failing to close must not hide why the run ended
                log.exception("closing %s failed", type(logger).__name__)
