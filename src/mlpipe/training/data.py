"""The training data path: the processed arrays kept on the device, batches cut, augmented and normalised there.

airbench's lesson: for small images the data loader, not the GPU, is the bottleneck. So the
processed uint8 arrays are copied to the GPU once when they fit (leaving a configurable share
of its memory free); every batch is then an index into that tensor, augmented (random crop
with padding, horizontal flip: images (C, H, W) only) and normalised on the GPU. The arrays are uint8 or,
for a lab's float data (signals, features), float32. When the data does not fit, batches
are gathered straight from the memory-mapped arrays into two pinned buffers and copied without
blocking (no copy of the whole set in host memory). On the CPU the same code runs on CPU tensors.
A step's share of the epoch is a slice of the epoch's plan, so cutting a batch never waits for
the GPU.

Randomness is drawn once per epoch from a generator seeded by (seed, epoch): the order and
the augmentation of step ``k`` of epoch ``e`` are the same whether or not the run was
interrupted, which is what makes resume bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlpipe.processed import Normalizer

COPY_CHUNK_BYTES = 256 << 20


class AugmentationError(ValueError):
    """Crop or flip asked for samples that are not images; the message names the config key."""


@dataclass(frozen=True)
class Augmentation:
    crop_padding: int = 0
    flip: bool = False

    @classmethod
    def for_samples(cls, hparams: dict, shape: list[int]) -> Augmentation:
        """The run's augmentation, refused (naming the key) when it needs images and samples are not (C, H, W)."""
        for key, off in (("crop_padding", 0), ("flip", "false")):
            if hparams[key] and len(shape) != 3:
                raise AugmentationError(
                    f"train.{key}: random crops and flips need images (C, H, W), but this dataset's samples have "
                    f"shape {tuple(shape)}; set train.{key}: {off}"
                )
        return cls(hparams["crop_padding"], hparams["flip"])


@dataclass
class EpochPlan:
    """Everything random about one epoch, drawn up front."""

    order: torch.Tensor  # permutation of example indices
    shifts: torch.Tensor | None  # (N, 2) crop offsets in [0, 2 * padding]
    flips: torch.Tensor | None  # (N,) bool


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    entropy = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(entropy))


def fits_on_device(nbytes: int, device: torch.device, headroom: float) -> bool:
    if device.type != "cuda":
        return True
    free, total = torch.cuda.mem_get_info(device)
    return nbytes <= free - headroom * total


def to_device_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy a (memory-mapped) array to ``device`` in chunks, never holding a second full host copy."""
    tensor = torch.empty(array.shape, dtype=torch_dtype(array), device=device)
    rows = max(1, COPY_CHUNK_BYTES // max(1, array[0].nbytes if len(array) else 1))
    for start in range(0, len(array), rows):
        tensor[start : start + rows].copy_(torch.from_numpy(np.array(array[start : start + rows])))
    return tensor


def torch_dtype(array: np.ndarray) -> torch.dtype:
    return torch.from_numpy(array[:0].copy()).dtype


class TrainBatches:
    """Shuffled, augmented, normalised training batches for one rank of one run."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        normalizer: Normalizer,
        augmentation: Augmentation,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        on_device: bool = True,
    ):
        self.count = len(labels)
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalizer
        self.augmentation = augmentation
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.on_device = on_device
        if on_device:
            self.images = to_device_tensor(images, device)
            self.labels = torch.from_numpy(np.asarray(labels)).to(device)
        else:  # streamed: read from the (memory-mapped) arrays as each batch needs them
            to_gpu = device.type == "cuda"  # pinned buffers and copy events only matter for a GPU
            self.images, self.labels = images, torch.from_numpy(np.asarray(labels))
            self._buffers = [
                torch.empty((batch_size, *images.shape[1:]), dtype=torch_dtype(images), pin_memory=to_gpu)
                for _ in range(2)
            ]
            self._copied = [torch.cuda.Event(), torch.cuda.Event()] if to_gpu else None
        # Drop the last partial batch: a batch of one breaks batch-norm, and each epoch reshuffles.
        self.steps_per_epoch = max(1, self.count // batch_size)

    def plan(self, epoch: int) -> EpochPlan:
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(self.count, generator=generator)
        shifts = flips = None
        padding = self.augmentation.crop_padding
        if padding:
            shifts = torch.randint(0, 2 * padding + 1, (self.count, 2), generator=generator)
        if self.augmentation.flip:
            flips = torch.rand(self.count, generator=generator) < 0.5
        to = self.device if self.on_device else torch.device("cpu")
        return EpochPlan(
            order.to(to),
            None if shifts is None else shifts.to(self.device),
            None if flips is None else flips.to(self.device),
        )

    def batch(self, plan: EpochPlan, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``step`` of the epoch: this rank's share of the global batch."""
        share = slice(
            step * self.batch_size + self.rank, min((step + 1) * self.batch_size, self.count), self.world_size
        )
        images, labels = self._gather(plan.order[share], step)
        if plan.shifts is not None:
            images = random_crop(images, plan.shifts[share], self.augmentation.crop_padding)
        if plan.flips is not None:
            images = torch.where(plan.flips[share].view(-1, 1, 1, 1), images.flip(3), images)
        return self.normalize(images), labels

    def _gather(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.on_device:
            return self.images[index], self.labels[index]
        # Two host buffers used in turn: the gather into one overlaps the copy out of the other.
        slot = step % 2
        if self._copied:
            self._copied[slot].synchronize()  # the copy that last read this buffer is done
        buffer = self._buffers[slot][: len(index)]
        np.take(self.images, index.numpy(), axis=0, out=buffer.numpy(), mode="clip")  # "raise" would buffer
        images = buffer.to(self.device, non_blocking=True)
        if self._copied:
            self._copied[slot].record()
        return images, self.labels[index].to(self.device, non_blocking=True)


def random_crop(images: torch.Tensor, shifts: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image at its own offset from a zero-padded copy, in one gather on the device."""
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = (shifts[:, 0:1] + torch.arange(height, device=images.device)).view(batch, 1, height, 1)
    cols = (shifts[:, 1:2] + torch.arange(width, device=images.device)).view(batch, 1, 1, width)
    batch_index = torch.arange(batch, device=images.device).view(batch, 1, 1, 1)
    channel_index = torch.arange(channels, device=images.device).view(1, channels, 1, 1)
    return padded[batch_index, channel_index, rows, cols]
