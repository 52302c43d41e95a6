"""The one place that chooses the device and the numeric precision of a run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from mlpipe.torch_build import current_build, format_capability, install_hint

ALLOW_CPU_ENV = "MLPIPE_ALLOW_CPU"


class NoGpuError(RuntimeError):
    """A job asked for GPUs but sees none."""


class NoKernelError(RuntimeError):
    """This PyTorch build has no kernel for the job's GPU: its first operation there would fail."""


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    autocast_dtype: torch.dtype | None
    needs_grad_scaler: bool


def allow_cpu_from_env(environ: Mapping[str, str]) -> bool:
    return environ.get(ALLOW_CPU_ENV, "").lower() in {"1", "true", "yes"}


def choose_device(gpus_requested: int, local_rank: int = 0, allow_cpu: bool = False) -> torch.device:
    """CUDA when present, else CPU; but a job that asked for GPUs and sees none fails at once.

    ``gpus_requested`` is what the scheduler was asked for (0 = no requirement). Running a
    GPU job on a CPU by accident would burn hours of allocation, so it is an error unless
    ``allow_cpu`` (set by ``MLPIPE_ALLOW_CPU=1``, e.g. for a test cluster without real GPUs).
    A GPU this PyTorch build has no kernel for fails at once too.
    """
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible:
        if gpus_requested > visible:
            raise NoGpuError(f"this job asked for {gpus_requested} GPUs but sees {visible}")
        device = torch.device("cuda", local_rank % visible)
        require_kernels(device)
        return device
    if gpus_requested and not allow_cpu:
        hint = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        raise NoGpuError(
            f"this job asked for {gpus_requested} GPU(s) but CUDA sees none (CUDA_VISIBLE_DEVICES={hint}); "
            f"set {ALLOW_CPU_ENV}=1 to train on the CPU instead"
        )
    return torch.device("cpu")


def require_kernels(device: torch.device) -> None:
    """Stop before any work when the installed build has no kernel for ``device`` (a CUDA device)."""
    capability = torch.cuda.get_device_capability(device)
    build = current_build()
    if not build.runs_on(capability):
        raise NoKernelError(
            f"GPU {device.index} ({torch.cuda.get_device_name(device)}, compute capability "
            f"{format_capability(capability)}) has no kernel in {build.describe()}: {install_hint(capability)}"
        )


def choose_precision(device: torch.device, requested: str = "auto") -> Precision:
    """bf16 on GPUs that support it, fp16 with loss scaling on older GPUs (V100), fp32 on CPU."""
    if requested == "auto":
        if device.type != "cuda":
            requested = "fp32"
        else:
            requested = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if requested == "fp32":
        return Precision("fp32", None, False)
    if requested == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ValueError(
                f"train.precision: {device_name(device)} has no bf16 arithmetic (it would be emulated, slowly); "
                "use auto or fp16"
            )
        return Precision("bf16", torch.bfloat16, False)
    if requested == "fp16":
        return Precision("fp16", torch.float16, device.type == "cuda")
    raise ValueError(f"train.precision: unknown precision {requested!r}; allowed: auto, fp32, bf16, fp16")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
