"""Checks of a run's set-up that take milliseconds, made before its data and model are loaded: a mistake found
here costs nothing, where found later it costs an epoch (or, on a cluster, a queue wait and an epoch per retry)."""

from __future__ import annotations

import tempfile
from pathlib import Path


class StateFolderError(OSError):
    """The run's state folder under checkpoint_root cannot be written."""


class BatchSizeError(ValueError):
    """A batch size the training split cannot fill."""


def check_state_folder(state_dir: Path) -> None:
    """Create the run's state folder and write a file in it: resume.pt is saved there every epoch."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as error:
        raise StateFolderError(
            f"checkpoint_root: cannot write resumable state to {state_dir} ({error.strerror or error}); "
            "make it writable or set checkpoint_root to a folder you can write"
        ) from None


def check_batch_size(batch_size: int, train_count: int, dataset: str) -> None:
    """A batch larger than the training split would silently be the whole split, one step per epoch."""
    if batch_size > train_count:
        raise BatchSizeError(
            f"train.batch_size: {batch_size} is larger than the training split of {dataset} ({train_count} images); "
            f"use at most {train_count}"
        )
