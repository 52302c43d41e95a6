"""The one module that calls NVML, through NVIDIA's binding (the ``nvidia-ml-py`` package, module ``pynvml``).

Kept thin: start NVML, find a GPU by its UUID, read it, stop. Everything else is handed an :class:`Nvml`, so the
tests give it a scripted stand-in module with the same functions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import ModuleType


class NvmlUnavailable(RuntimeError):
    """NVML cannot watch this GPU here; the message says why (no package, no driver, a GPU it cannot read)."""


@dataclass(frozen=True)
class Reading:
    """One GPU at one moment."""

    utilisation: float  # % of NVML's last sample period (1/6 s to 1 s, by GPU) in which a kernel ran
    memory_mb: float  # device memory in use by every process on the GPU, in MiB
    power_w: float | None  # the board's power draw; None where the GPU does not report it


class Nvml:
    """NVML, started; ``module`` is ``pynvml`` or a stand-in with the same functions."""

    def __init__(self, module: ModuleType):
        self.module = module

    @classmethod
    def open(cls, module: ModuleType | None = None) -> Nvml:
        """Start NVML; :class:`NvmlUnavailable` without the package or the driver's library."""
        if module is None:
            try:
                import pynvml as module
            except ImportError:
                raise NvmlUnavailable("the nvidia-ml-py package is not installed") from None
        try:
            module.nvmlInit()
        except module.NVMLError as error:
            raise NvmlUnavailable(f"NVML cannot start ({error})") from None
        return cls(module)

    def handle(self, uuid: str) -> object:
        """The handle of the GPU whose UUID is ``uuid`` (``GPU-...``, as NVML and nvidia-smi write it)."""
        try:
            return self.module.nvmlDeviceGetHandleByUUID(uuid)
        except self.module.NVMLError as error:
            raise NvmlUnavailable(f"NVML finds no GPU {uuid} ({error})") from None

    def read(self, handle: object) -> Reading:
        nvml = self.module
        try:
            utilisation = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            used_bytes = nvml.nvmlDeviceGetMemoryInfo(handle).used
        except nvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML cannot read the GPU's utilisation or memory ({error})") from None
        try:
            power_w = nvml.nvmlDeviceGetPowerUsage(handle) / 1000  # NVML gives milliwatts
        except nvml.NVMLError:  # not every board reports its power
            power_w = None
        return Reading(float(utilisation), used_bytes / 2**20, power_w)

    def close(self) -> None:
        with contextlib.suppress(self.module.NVMLError):
            self.module.nvmlShutdown()
