"""What a finished run leaves behind: its metrics table, its weights and its run config."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from mlpipe.io import atomic_path, write_csv, write_json
from mlpipe.layout import METRIC_COLUMNS, OPTIONAL_METRIC_COLUMNS, RunFiles
from mlpipe.training.checkpoint import save_checkpoint
from mlpipe.training.progress import Progress


@dataclass(frozen=True)
class TrainOutputs:
    """Where a training job writes: its declared outputs, written when training completes, and its records."""

    metrics: Path
    best: Path
    last: Path
    run_config: Path
    run_dir: Path  # the run's folder, where it keeps its records while it trains (see ``records``)

    @property
    def records(self) -> RunFiles:
        """run_info.json and the trackers' folders: not declared outputs, so a failed job keeps them."""
        return RunFiles.of(self.run_dir)


def weights(model: torch.nn.Module, hparams: dict, meta: dict, epoch: int, val_acc: float) -> dict:
    """A self-describing weights file: enough to rebuild the model and normalise its inputs."""
    return {
        "model": hparams["model"],
        "model_args": hparams["model_args"],
        "in_channels": meta["shape"][0],
        "num_classes": meta["num_classes"],
        "classes": meta["classes"],
        "shape": meta["shape"],  # one sample's
        "dtype": meta["dtype"],  # of the stored samples: how to scale them before mean and std
        "mean": meta["mean"],
        "std": meta["std"],
        "epoch": epoch,
        "val_acc": val_acc,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }


def finished_run_config(run_config: dict, progress: Progress) -> dict:
    """run_config.json of a finished run: how it ran, its version and its best epoch."""
    return run_config | {
        "version": progress.version,
        "best_epoch": progress.best_epoch,
        "best_val_acc": progress.best_val_acc,
        "best_val_loss": progress.best_val_loss,
        "train_seconds": progress.train_seconds,
        "torch": torch.__version__,
    }


def write_outputs(
    outputs: TrainOutputs, best_weights: Path, last_weights: dict, progress: Progress, run_config: dict
) -> None:
    """The declared outputs of a finished run; ``best_weights`` is the best epoch's file kept under the state dir,
    ``run_config`` from :func:`finished_run_config`."""
    write_csv(outputs.metrics, progress.rows, METRIC_COLUMNS + OPTIONAL_METRIC_COLUMNS)
    save_checkpoint(outputs.last, last_weights)
    with atomic_path(outputs.best) as tmp:
        shutil.copyfile(best_weights, tmp)
    write_json(outputs.run_config, run_config)


def write_rung_record(path: Path, run_id: str, rows: list[dict], epochs: int) -> dict:
    """A halving rung's record of a run: its best validation accuracy (ties: lower loss) up to the rung's epochs."""
    reached = rows[:epochs]
    best = max(reached, key=lambda row: (row["val_acc"], -row["val_loss"]))
    record = {
        "run_id": run_id,
        "epochs": epochs,
        "best_val_acc": best["val_acc"],
        "best_val_loss": best["val_loss"],
        "best_epoch": best["epoch"],
        "val_acc": [row["val_acc"] for row in reached],
    }
    write_json(path, record)
    return record
