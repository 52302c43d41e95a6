"""What finished runs used, by cost class, kept in ``<results_dir>/resource_profile.json``.

A cost class is what decides a run's speed and memory: its model and the model's arguments, the dataset, the
batch size, the GPUs, the precision setting, and the partition it ran on. The registry job adds the finished
runs of each pass (one sample per run version, the latest 50 per class), so what earlier sweeps of the study
measured stays for later ones. Snakemake never sees the file: writing it reruns nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlpipe.io import read_json, write_json

PROFILE_NAME = "resource_profile.json"
KEPT_PER_CLASS = 50


def cost_class(hparams: Mapping, dataset: str, gpus: int, partition: str | None) -> str:
    """The key runs of one cost class share."""
    described = {
        "model": hparams["model"],
        "model_args": hparams.get("model_args", {}),
        "dataset": dataset,
        "batch_size": hparams["batch_size"],
        "gpus": gpus,
        "precision": hparams.get("precision", "auto"),
        "partition": partition or "local",
    }
    return json.dumps(described, sort_keys=True)


def run_sample(run_config: Mapping, info: Mapping, elapsed: Mapping[str, float]) -> tuple[str, dict] | None:
    """(cost class, measurements) of one finished run, from its run_config.json and run_info.json; its last job's
    time from ``elapsed`` (SLURM's accounting: the whole job, start-up included) where known, else its own clock."""
    usage, requested = info.get("usage") or {}, info.get("requested") or {}
    provenance = info.get("provenance") or {}
    epochs = usage.get("epochs_done")
    wall = elapsed.get(provenance.get("slurm_job_id") or "", usage.get("wall_seconds"))
    if info.get("status") != "finished" or not epochs or wall is None:
        return None
    key = cost_class(
        run_config["hparams"],
        run_config["dataset"]["dataset"],
        requested.get("gpus") or 0,
        provenance.get("slurm_partition"),
    )
    return key, {
        "epoch_seconds": usage["train_seconds"] / epochs,
        "startup_seconds": startup_seconds(wall, usage),
        "peak_host_memory_mb": usage.get("peak_host_memory_mb"),
        "peak_gpu_memory_mb": usage.get("peak_gpu_memory_mb"),
    }


def startup_seconds(wall: float, usage: Mapping) -> float:
    """What the run's last job spent outside training: its time (``wall``) less the epochs it trained itself.
    (Records written before ``job_train_seconds`` existed count the whole run's training.)"""
    return max(0.0, wall - usage.get("job_train_seconds", usage["train_seconds"]))


def update_profile(path: Path, samples: Iterable[tuple[str, str, dict]]) -> dict:
    """Add ``(cost class, run version, measurements)`` samples to the profile at ``path`` (atomically)."""
    profile = load_profile(path)
    for key, version, measured in samples:
        runs = profile.setdefault(key, {})
        runs.pop(version, None)
        runs[version] = measured  # latest last
        for oldest in list(runs)[: max(0, len(runs) - KEPT_PER_CLASS)]:
            del runs[oldest]
    write_json(path, profile)
    return profile


def load_profile(path: Path) -> dict[str, dict[str, dict]]:
    """``{cost class: {run version: measurements}}``; empty when nothing was measured yet."""
    with contextlib.suppress(OSError, ValueError):
        profile = read_json(path)
        if isinstance(profile, dict):
            return profile
    return {}
