"""Reading a processed dataset, shared by training and evaluation: its splits, its metadata, its normalisation.

Preprocess writes each split as a memory-mapped array and ``meta.json`` (see :mod:`mlpipe.layout`);
this module is the one place that reads them back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mlpipe.io import read_json
from mlpipe.layout import META_NAME, split_arrays

# Processed files are rebuilt by forcing the rule that wrote them; Snakemake cannot tell a damaged file from a good one.
REBUILD_HINT = "rebuild the processed data: snakemake --forcerun preprocess (with your usual --cores or --profile)"
META_KEYS = ("dataset", "classes", "num_classes", "shape", "mean", "std", "counts", "split")


class ProcessedDataError(ValueError):
    """A processed file that is missing, cut short or malformed; the message names it and how to rebuild it."""


def load_split(processed_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map a split's samples (N, *shape; uint8 or float32) and load its labels (int64)."""
    images_path, labels_path = split_arrays(processed_dir, split)
    images, labels = _load_array(images_path, mmap_mode="r"), _load_array(labels_path)
    if len(images) != len(labels):
        raise ProcessedDataError(
            f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels; {REBUILD_HINT}"
        )
    return images, labels


def load_meta(processed_dir: Path) -> dict:
    """meta.json, with the keys training and evaluation read."""
    path = processed_dir / META_NAME
    try:
        meta = read_json(path)
    except FileNotFoundError:
        raise ProcessedDataError(f"{path}: no such file; {REBUILD_HINT}") from None
    except ValueError as error:
        raise ProcessedDataError(f"{path}: not valid JSON ({error}); {REBUILD_HINT}") from None
    missing = [key for key in META_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ProcessedDataError(f"{path}: lacks {', '.join(missing)}; {REBUILD_HINT}")
    return meta


def _load_array(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except FileNotFoundError:
        raise ProcessedDataError(f"{path}: no such file; {REBUILD_HINT}") from None
    except (ValueError, EOFError) as error:  # numpy's words for a file cut short or not an array
        raise ProcessedDataError(f"{path}: cannot be read ({error}); {REBUILD_HINT}") from None


class Normalizer:
    """Stored values -> float, per channel (a batch's dimension 1): uint8 as (x / 255 - mean) / std, float32 as
    (x - mean) / std, in one multiply-add. ``channels_last`` applies to images, batches (N, C, H, W), only."""

    def __init__(
        self,
        mean: list[float],
        std: list[float],
        device: torch.device,
        channels_last: bool,
        *,
        sample_rank: int = 3,
        dtype: str = "uint8",
    ):
        std_tensor = torch.tensor(std, device=device).clamp_min(1e-8)
        per_channel = (1, -1, *[1] * (sample_rank - 1))
        value_scale = 255 if dtype == "uint8" else 1
        self.scale = (1 / (value_scale * std_tensor)).view(per_channel)
        self.offset = (-torch.tensor(mean, device=device) / std_tensor).view(per_channel)
        images = channels_last and sample_rank == 3
        self.memory_format = torch.channels_last if images else torch.contiguous_format

    @classmethod
    def of(cls, data: dict, device: torch.device, channels_last: bool) -> Normalizer:
        """For a processed dataset's meta.json, or a weights file (both hold mean, std, shape and dtype)."""
        return cls(
            data["mean"], data["std"], device, channels_last, sample_rank=len(data["shape"]), dtype=data["dtype"]
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.addcmul(self.offset, images.float(), self.scale)
        return out.contiguous(memory_format=self.memory_format)


def eval_batches(images, labels, batch_size: int, device: torch.device, normalizer: Normalizer):
    """Fixed-order batches for evaluation, from device tensors or (memory-mapped) host arrays."""
    for start in range(0, len(labels), batch_size):
        batch_images, batch_labels = images[start : start + batch_size], labels[start : start + batch_size]
        if isinstance(batch_images, np.ndarray):
            batch_images = torch.from_numpy(np.array(batch_images))
            batch_labels = torch.from_numpy(np.asarray(batch_labels))
        yield normalizer(batch_images.to(device, non_blocking=True)), batch_labels.to(device, non_blocking=True)
