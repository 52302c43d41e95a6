"""The contract between stages: the name of every file a stage leaves on disk, and the columns of its tables.

Rules, scripts and the package all take these names from here, so a file is named in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# <data_root>/raw/<dataset>/
MANIFEST_NAME = "manifest.json"  # what download produced; written last

# <data_root>/processed/<dataset>/
META_NAME = "meta.json"  # classes, shape, normalisation, counts; written last
SPLITS = ("train", "val", "test")

# <results_dir>/
HISTORY_DIR_NAME = "history"  # every finished version of every run, passes and tags (mlpipe.history.store)
SITE_RECORD_NAME = "site.json"  # the SLURM site a study runs on (mlpipe.cluster.selection); absent for a local study

# <results_dir>/runs/<run id>/
RUN_FILE_NAMES = {
    "metrics": "metrics.csv",  # one row per epoch, METRIC_COLUMNS then OPTIONAL_METRIC_COLUMNS
    "best": "best.pt",  # weights of the best epoch (by validation accuracy, then loss)
    "last": "last.pt",  # weights after the last epoch
    "run_config": "run_config.json",  # resolved hyperparameters, where and how it ran
    "run_info": "run_info.json",  # status, provenance, resource use; kept up to date while training
    "tensorboard": "tensorboard",  # TensorBoard event files (a folder)
    "wandb": "wandb",  # Weights & Biases offline runs (a folder)
    "evaluation": "evaluation.json",  # test metrics
    "confusion": "confusion.csv",  # test confusion matrix
}
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"]
# Written after METRIC_COLUMNS (mlpipe.gpuwatch): empty where not measured (no GPU, no NVML), and absent from run
# folders written before they existed, which the analysis reads all the same.
OPTIONAL_METRIC_COLUMNS = ["data_wait_share", "gpu_util", "gpu_memory_mb", "gpu_power_w"]

# <checkpoint_root>/<run id>/: what a run needs to resume; never a declared output
RESUME_NAME = "resume.pt"
STATE_BEST_NAME = "best.pt"
OWNER_LOCK_NAME = "owner.lock"  # held by the one live trainer of the run (mlpipe.recovery.run_lock)


def split_arrays(processed_dir: str | Path, split: str) -> tuple[Path, Path]:
    """The images and labels arrays of one split."""
    processed_dir = Path(processed_dir)
    return processed_dir / f"{split}_images.npy", processed_dir / f"{split}_labels.npy"


def processed_files(processed_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> list[Path]:
    """The arrays of ``splits`` and meta.json (last); by default every file preprocess writes."""
    arrays = [path for split in splits for path in split_arrays(processed_dir, split)]
    return [*arrays, Path(processed_dir) / META_NAME]


@dataclass(frozen=True)
class RunFiles:
    """The files of one run's folder."""

    folder: Path
    metrics: Path
    best: Path
    last: Path
    run_config: Path
    run_info: Path
    tensorboard: Path
    wandb: Path
    evaluation: Path
    confusion: Path

    @classmethod
    def of(cls, run_dir: str | Path) -> RunFiles:
        return cls(Path(run_dir), **{key: Path(run_dir) / name for key, name in RUN_FILE_NAMES.items()})
