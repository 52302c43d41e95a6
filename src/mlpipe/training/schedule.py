"""Learning-rate schedule: linear warmup to the peak, then constant, cosine or linear decay, per step."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, decay: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if decay == "constant":
        return 1.0
    if decay == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if decay == "linear":
        return max(0.0, 1 - progress)
    raise ValueError(f"train.schedule: unknown schedule {decay!r}; allowed: constant, cosine, linear")


def build_scheduler(
    optimizer: torch.optim.Optimizer, hparams: dict, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total_steps = hparams["epochs"] * steps_per_epoch
    warmup_steps = round(hparams.get("warmup_epochs", 0) * steps_per_epoch)
    decay = hparams.get("schedule", "constant")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, decay))
