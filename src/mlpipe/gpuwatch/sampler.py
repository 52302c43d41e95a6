"""A background thread that reads every GPU of a job every few seconds, and the means of what it read.

NVML's calls are C calls through ctypes, which let go of Python's lock while they run: the training thread
waits for the sampler only for the few lines of Python around each reading (benchmarks/gpu_watch.py measures it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from mlpipe.gpuwatch.nvml import Nvml, NvmlUnavailable, Reading

log = logging.getLogger(__name__)

SAMPLE_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class GpuMeans:
    """Means over every reading of every GPU: so per GPU, averaged over the job's GPUs."""

    utilisation: float  # %
    memory_mb: float
    power_w: float | None  # None when a reading had no power
    readings: int


@dataclass
class _Sums:
    readings: int = 0
    utilisation: float = 0.0
    memory_mb: float = 0.0
    power_w: float | None = 0.0

    def add(self, reading: Reading) -> None:
        self.readings += 1
        self.utilisation += reading.utilisation
        self.memory_mb += reading.memory_mb
        self.power_w = None if self.power_w is None or reading.power_w is None else self.power_w + reading.power_w

    def means(self) -> GpuMeans | None:
        if not self.readings:
            return None
        power = None if self.power_w is None else self.power_w / self.readings
        return GpuMeans(self.utilisation / self.readings, self.memory_mb / self.readings, power, self.readings)


class GpuSampler:
    """Reads the GPUs of ``handles`` every ``every`` seconds in a daemon thread while it is open (``with``).

    :meth:`restart` begins a new span (an epoch's training steps) and :meth:`means` gives its means. NVML that
    stops answering ends the sampling, said once; what was read stays.
    """

    def __init__(self, nvml: Nvml, handles: list[object], every: float = SAMPLE_EVERY_SECONDS):
        self.nvml, self.handles, self.every = nvml, handles, every
        self.failure: str | None = None
        self._sums = _Sums()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="gpu-watch", daemon=True)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> bool:
        self._stop.set()
        self._thread.join()
        return False

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.every) and self.sample():
            pass

    def sample(self) -> bool:
        """Read every GPU once; False when NVML could not (the reason is in ``failure``)."""
        if self.failure is not None:
            return False
        try:
            readings = [self.nvml.read(handle) for handle in self.handles]
        except NvmlUnavailable as error:
            self.failure = str(error)
            log.warning("gpu watch: sampling stopped: %s; the figures read so far are kept", error)
            return False
        with self._lock:
            for reading in readings:
                self._sums.add(reading)
        return True

    def restart(self) -> None:
        """Forget the readings so far: the next means are of what follows."""
        with self._lock:
            self._sums = _Sums()

    def means(self) -> GpuMeans | None:
        """The means since :meth:`restart`; a span shorter than the interval is read once now (NVML's utilisation
        covers its last sample period). None when nothing could be read."""
        with self._lock:
            means = self._sums.means()
        if means is None and self.sample():
            with self._lock:
                means = self._sums.means()
        return means
