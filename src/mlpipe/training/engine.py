"""The model and everything that updates it, with the one training step the loop and the benchmark share.

Speed choices, each for a reason:
- channels_last on CUDA: convolutions run on tensor cores in NHWC without layout shuffles;
- bf16 autocast on GPUs that have it (no loss scaling needed), fp16 with a GradScaler on older ones;
- fused optimizer kernels on CUDA: one launch per step instead of one per parameter tensor;
- optional ``torch.compile``: fewer, fused kernels once the first steps have paid for compilation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlpipe.device import Precision
from mlpipe.training.distributed import ProcessGroup
from mlpipe.training.ema import WeightAverage
from mlpipe.training.optim import build_optimizer
from mlpipe.training.schedule import build_scheduler


@dataclass
class Engine:
    model: torch.nn.Module  # the plain module: its state_dict has no DDP/compile prefixes
    train_model: torch.nn.Module  # what the step calls: maybe wrapped in DDP and compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    precision: Precision
    ema: WeightAverage | None = None

    @classmethod
    def build(
        cls,
        model: torch.nn.Module,
        hparams: dict,
        device: torch.device,
        precision: Precision,
        steps_per_epoch: int,
        group: ProcessGroup | None = None,
    ) -> Engine:
        model = model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, hparams, device)
        ema = WeightAverage(model, hparams["ema_decay"]) if hparams.get("ema_decay") else None
        train_model = model
        if group is not None and group.distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if hparams.get("compile"):
            train_model = torch.compile(train_model)
        return cls(
            model=model,
            train_model=train_model,
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, hparams, steps_per_epoch),
            scaler=torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler),
            criterion=torch.nn.CrossEntropyLoss(label_smoothing=hparams.get("label_smoothing", 0.0)),
            precision=precision,
            ema=ema,
        )

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights to evaluate and save: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the (detached) loss and the logits."""
        with torch.autocast(
            images.device.type, dtype=self.precision.autocast_dtype, enabled=self.precision.autocast_dtype is not None
        ):
            logits = self.train_model(images)
            loss = self.criterion(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return loss.detach(), logits.detach()

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
