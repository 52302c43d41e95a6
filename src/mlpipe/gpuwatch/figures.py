"""A run's GPU figures from its per-epoch metrics rows, and the flag of a GPU that waits.

From the rows, not from the sampler, so that a resumed run's figures cover every epoch of every attempt (the rows
are part of its resumable state). Each epoch counts by its training seconds; epochs without a value (the CPU, no
NVML, a run resumed from a state saved before these columns existed) are left out.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# The per-epoch columns this room fills (among mlpipe.layout.OPTIONAL_METRIC_COLUMNS); a run's figures share the names.
GPU_COLUMNS = ["gpu_util", "gpu_memory_mb", "gpu_power_w"]
DATA_WAIT_COLUMN = "data_wait_share"

IDLE_BELOW = 50.0  # % mean utilisation under which a run is flagged: its GPU waited most of the time
# From this share of the step time spent producing batches, the data path is named as the cause; below it the host
# was busy launching the step's work, which a GPU finishes faster than it gets it when the batch is small.
DATA_WAIT_CAUSE = 0.25


def run_figures(rows: list[dict], batch_size: int) -> dict:
    """gpu_util, gpu_memory_mb, gpu_power_w and data_wait_share over the run (None where never measured), and
    gpu_flag: the flag of a GPU that waited (None when it did not, or nothing was measured)."""
    figures = {column: weighted_mean(rows, column) for column in [*GPU_COLUMNS, DATA_WAIT_COLUMN]}
    figures["gpu_flag"] = idle_flag(figures["gpu_util"], figures[DATA_WAIT_COLUMN], batch_size)
    return figures


def weighted_mean(rows: list[dict], column: str) -> float | None:
    """Mean of ``column`` over the rows that have it, each weighted by its epoch's training seconds."""
    measured = [(row[column], row["epoch_seconds"]) for row in rows if row.get(column) is not None]
    seconds = sum(weight for _, weight in measured)
    if not measured or seconds <= 0:
        return None
    return sum(value * weight for value, weight in measured) / seconds


def idle_flag(utilisation: float | None, data_wait_share: float | None, batch_size: int) -> str | None:
    """``gpu idle: mean utilisation 23% — data wait 61% of step time: <the likely cause>``, or None."""
    if utilisation is None or utilisation >= IDLE_BELOW:
        return None
    flag = f"gpu idle: mean utilisation {utilisation:.0f}%"
    if data_wait_share is None:
        return flag
    flag += f" — data wait {100 * data_wait_share:.0f}% of step time: "
    if data_wait_share >= DATA_WAIT_CAUSE:
        return flag + "the data path starves the GPU"
    return flag + f"a batch of {batch_size} is too small to keep the GPU busy (raise train.batch_size)"


def describe(figures: dict) -> str | None:
    """One line of the train log with the run's GPU figures; None when nothing was measured."""
    if figures["gpu_util"] is None:
        return None
    power, wait = figures["gpu_power_w"], figures[DATA_WAIT_COLUMN]
    return (
        f"gpu use: mean utilisation {figures['gpu_util']:.0f}%, {figures['gpu_memory_mb']:,.0f} MB"
        + ("" if power is None else f", {power:.0f} W")
        + " per GPU"
        + ("" if wait is None else f"; data wait {100 * wait:.0f}% of step time")
    )


def log_run_figures(rows: list[dict], batch_size: int) -> None:
    """The run's GPU figures in the train log, and its flag as a warning."""
    figures = run_figures(rows, batch_size)
    line = describe(figures)
    if line:
        log.info(line)
    if figures["gpu_flag"]:
        log.warning(figures["gpu_flag"])
