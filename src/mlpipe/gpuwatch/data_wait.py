"""How long the training loop's host spends producing batches, apart from the steps that use them.

Timed with the host's clock around each batch, never waiting for the GPU (the loop does not, within an epoch).
What it counts is the time the loop could launch no GPU work because it was cutting, augmenting and normalising a
batch or, for data streamed from host memory, gathering it into a pinned buffer and waiting for that buffer's
previous copy. A busy GPU also makes the host wait on CUDA's full launch queue, wherever in the loop it is, so the
share means most when utilisation is low, which is when the flag (:mod:`mlpipe.gpuwatch.figures`) reads it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mlpipe.training.data import EpochPlan, TrainBatches


class DataWaitClock:
    """The seconds spent in :meth:`batch` since it was made (one clock per epoch)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def batch(self, batches: TrainBatches, plan: EpochPlan, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``batches.batch(plan, step)``, timed."""
        started = time.perf_counter()
        batch = batches.batch(plan, step)
        self.seconds += time.perf_counter() - started
        return batch

    def share_of(self, seconds: float) -> float:
        """The share of ``seconds`` (the epoch's training time) that went to batches."""
        return min(1.0, self.seconds / seconds) if seconds > 0 else 0.0
