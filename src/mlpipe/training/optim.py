"""Optimizer construction: SGD with Nesterov momentum or AdamW, fused kernels on CUDA."""

from __future__ import annotations

import torch


def build_optimizer(model: torch.nn.Module, hparams: dict, device: torch.device) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters (1-D tensors): decaying them only hurts.
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": hparams["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type == "cuda"  # one kernel per step instead of one per tensor
    if hparams["optimizer"] == "sgd":
        return torch.optim.SGD(
            groups, lr=hparams["lr"], momentum=hparams["momentum"], nesterov=hparams["momentum"] > 0, fused=fused
        )
    if hparams["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=hparams["lr"], betas=(hparams["momentum"], 0.999), fused=fused)
    raise ValueError(f"train.optimizer: unknown optimizer {hparams['optimizer']!r}; allowed: sgd, adamw")
