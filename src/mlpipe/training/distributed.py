"""DistributedDataParallel plumbing for runs launched by torchrun (NCCL on GPUs, gloo on CPU)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun(environ: Mapping[str, str]) -> bool:
    return "LOCAL_RANK" in environ and "WORLD_SIZE" in environ


def init_process_group(use_cuda: bool, local_rank: int, world_size: int) -> ProcessGroup:
    """Join the job's process group (torchrun's rendezvous, read by torch from the environment)."""
    if world_size == 1:
        return ProcessGroup()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ProcessGroup(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size())


def sum_across(values: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """Element-wise sum over ranks (identity in a single process)."""
    if group.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_across(flag: bool, group: ProcessGroup, device: torch.device) -> bool:
    """True if ``flag`` is true on any rank, so every rank stops at the same step."""
    if not group.distributed:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(group: ProcessGroup) -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if group.distributed:
        dist.barrier()


def shutdown(group: ProcessGroup) -> None:
    if group.distributed:
        dist.destroy_process_group()
