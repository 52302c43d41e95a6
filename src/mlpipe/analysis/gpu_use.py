"""Each run's GPU use as its train job measured it (mlpipe.gpuwatch), for resources.csv and the report."""

from __future__ import annotations

import pandas as pd

from mlpipe.analysis.collect import Run

# From run_info.json's usage; empty for a run without a GPU or NVML, or recorded before they existed.
GPU_USE_COLUMNS = ["gpu_util", "gpu_memory_mb", "gpu_power_w", "data_wait_share", "gpu_flag"]


def with_gpu_use(table: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """``table`` (one row per run, in the order of ``runs``) with each run's GPU use beside it: mean utilisation
    (%), memory (MB) and power (W) per GPU, the share of step time spent waiting for data, and the flag of a GPU
    that waited."""
    used = pd.DataFrame(
        [{column: run.info.get("usage", {}).get(column) for column in GPU_USE_COLUMNS} for run in runs],
        columns=GPU_USE_COLUMNS,
        index=table.index,
    )
    return pd.concat([table, used], axis=1)
