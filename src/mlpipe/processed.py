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


def load_split(processed_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map a split's images (N, C, H, W uint8) and load its labels (int64)."""
    images_path, labels_path = split_arrays(processed_dir, split)
    return np.load(images_path, mmap_mode="r"), np.load(labels_path)


def load_meta(processed_dir: Path) -> dict:
    return read_json(processed_dir / META_NAME)


class Normalizer:
    """uint8 -> float, (x / 255 - mean) / std as one multiply-add."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device, channels_last: bool):
        std_tensor = torch.tensor(std, device=device).clamp_min(1e-8)
        self.scale = (1 / (255 * std_tensor)).view(1, -1, 1, 1)
        self.offset = (-torch.tensor(mean, device=device) / std_tensor).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

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
