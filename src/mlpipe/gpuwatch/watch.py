"""What a train job opens around its epochs: the sampler on the job's GPUs, or nothing, said once.

Rank 0 watches every GPU of the job (one per process, on one node): NVML sees the whole node whatever
CUDA_VISIBLE_DEVICES shows, and rank 0 records the run. Each CUDA device is found in NVML by its UUID, which stays
the same however CUDA_VISIBLE_DEVICES numbers, reorders or names the devices.
"""

from __future__ import annotations

import logging
from types import ModuleType

import torch

from mlpipe.gpuwatch.figures import GPU_COLUMNS
from mlpipe.gpuwatch.nvml import Nvml, NvmlUnavailable
from mlpipe.gpuwatch.sampler import SAMPLE_EVERY_SECONDS, GpuSampler

log = logging.getLogger(__name__)


class GpuWatch:
    """The job's GPUs, sampled while it is open (``with``); the per-epoch means go into the metrics rows."""

    def __init__(self, nvml: Nvml, sampler: GpuSampler, gpus: list[str]):
        self.nvml, self.sampler, self.gpus = nvml, sampler, gpus

    @property
    def status(self) -> dict:
        """What run_info.json says about the watch."""
        return {"recorded": True, "gpus": self.gpus, "sample_every_seconds": self.sampler.every}

    def start_epoch(self) -> None:
        self.sampler.restart()

    def epoch_figures(self) -> dict:
        """gpu_util, gpu_memory_mb and gpu_power_w since :meth:`start_epoch` (None where not measured)."""
        means = self.sampler.means()
        if means is None:
            return dict.fromkeys(GPU_COLUMNS)
        return {"gpu_util": means.utilisation, "gpu_memory_mb": means.memory_mb, "gpu_power_w": means.power_w}

    def __enter__(self) -> GpuWatch:
        self.sampler.__enter__()
        return self

    def __exit__(self, *exc_info) -> bool:
        self.sampler.__exit__(*exc_info)
        self.nvml.close()
        return False


class NoGpuWatch:
    """Nothing to watch (the CPU, no NVML, or a rank other than 0): every epoch's GPU figures are empty."""

    def __init__(self, reason: str | None):
        self.reason = reason

    @property
    def status(self) -> dict:
        return {"recorded": False, "reason": self.reason}

    def start_epoch(self) -> None:
        pass

    def epoch_figures(self) -> dict:
        return dict.fromkeys(GPU_COLUMNS)

    def __enter__(self) -> NoGpuWatch:
        return self

    def __exit__(self, *exc_info) -> bool:
        return False


def watch_job_gpus(device: torch.device, world_size: int, is_main: bool) -> GpuWatch | NoGpuWatch:
    """The watch of the GPUs the job trains on, opened by rank 0; other ranks get one that records nothing."""
    if not is_main:
        return NoGpuWatch(None)
    return open_gpu_watch(job_gpu_uuids(device, world_size))


def job_gpu_uuids(device: torch.device, world_size: int) -> list[str]:
    """The UUIDs of the job's GPUs: local rank r trains on visible GPU r % count (mlpipe.device.choose_device)."""
    if device.type != "cuda":
        return []
    indices = range(min(world_size, torch.cuda.device_count()))
    return [f"GPU-{torch.cuda.get_device_properties(index).uuid}" for index in indices]


def open_gpu_watch(
    gpu_uuids: list[str], nvml_module: ModuleType | None = None, every: float = SAMPLE_EVERY_SECONDS
) -> GpuWatch | NoGpuWatch:
    """The watch of the GPUs with these UUIDs (none: the job trains on the CPU), through ``pynvml`` or a stand-in
    ``nvml_module``. Where it cannot watch, one log line says why and the watch records nothing."""
    if not gpu_uuids:
        return nothing_watched("training on the CPU, no GPU to watch", logging.INFO)
    try:
        nvml = Nvml.open(nvml_module)
    except NvmlUnavailable as error:
        return nothing_watched(str(error), logging.WARNING)
    try:
        handles = [nvml.handle(uuid) for uuid in gpu_uuids]
        for handle in handles:  # e.g. a MIG slice, for which NVML reports no utilisation
            nvml.read(handle)
    except NvmlUnavailable as error:
        nvml.close()
        return nothing_watched(str(error), logging.WARNING)
    log.info("gpu watch: sampling %s every %g s (utilisation, memory, power)", ", ".join(gpu_uuids), every)
    return GpuWatch(nvml, GpuSampler(nvml, handles, every), gpu_uuids)


def nothing_watched(reason: str, level: int) -> NoGpuWatch:
    log.log(level, "gpu watch: %s; GPU utilisation, memory and power are not recorded", reason)
    return NoGpuWatch(reason)
