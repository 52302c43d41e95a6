"""What each train job asks for when ``train_job.runtime`` or ``mem_mb`` is ``auto``, and why.

Time: the measured seconds per epoch times the run's epochs, plus start-up, times the safety factor, plus the
warning before the walltime (the trainer stops there to checkpoint), in whole minutes, and at least a minute more
than the warning (SLURM may send it up to a minute early). From finished runs of the run's cost class (median
epoch time, longest start-up; what a run should use: the median start-up), else from the smoke test's step at the
study's largest batch (an upper bound per step, times the steps of an epoch), else the configured
``unmeasured_runtime``. Memory: the largest measured peak times the safety factor, else ``unmeasured_mem_mb``. A
retry asks for 2x, then 3x.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from mlpipe.requests.profile import cost_class

AUTO = "auto"
MIN_MEM_MB = 1000
# SLURM looks for jobs to warn every 30 s and may send the warning up to a minute early: a walltime leaves that.
SIGNAL_JITTER_SECONDS = 60


@dataclass(frozen=True)
class Request:
    minutes: int  # walltime of a first attempt
    mem_mb: int
    expected_minutes: float | None  # what the run should use, when measured
    why: str  # how the walltime was chosen, for the dry run


@dataclass(frozen=True)
class Measurements:
    """What the requests are learned from."""

    profile: Mapping[str, Mapping[str, dict]]  # mlpipe.requests.profile
    smoke_steps: Mapping[str, dict]  # model -> the smoke test's step at the study's largest batch
    smoke_startup_seconds: float | None  # the smoke test's train job's start-up
    train_samples: int | None  # of the study's training split, when known


def plan_requests(
    runs: Mapping[str, dict],
    dataset: str,
    gpus: int,
    partition: str | None,
    train_job: Mapping,
    measured: Measurements,
) -> dict[str, Request]:
    """The request of every run."""
    return {
        run_id: plan_request(hparams, dataset, gpus, partition, train_job, measured) for run_id, hparams in runs.items()
    }


def plan_request(
    hparams: dict, dataset: str, gpus: int, partition: str | None, train_job: Mapping, measured: Measurements
) -> Request:
    samples = list(measured.profile.get(cost_class(hparams, dataset, gpus, partition), {}).values())
    expected, source = _expected_seconds(hparams, samples, measured, statistics.median)
    longest, _ = _expected_seconds(hparams, samples, measured, max)  # what the request must cover
    if train_job["runtime"] != AUTO:
        minutes, why = train_job["runtime"], f"configured {train_job['runtime']} min"
    elif expected is None:
        minutes = train_job["unmeasured_runtime"]
        why = f"nothing measured yet: configured {minutes} min"
    else:
        margin = train_job["safety_factor"]
        warning = train_job["signal_before_walltime"]
        minutes = max(math.ceil((longest * margin + warning) / 60), math.ceil((warning + SIGNAL_JITTER_SECONDS) / 60))
        why = (
            f"{source}: {expected / 60:.1f} min per run -> {minutes} min (the longest x{margin:g}, and "
            f"{warning} s to checkpoint); configured {train_job['unmeasured_runtime']}"
        )
    return Request(minutes, _memory(samples, train_job), None if expected is None else expected / 60, why)


def _expected_seconds(
    hparams: dict, samples: list[dict], measured: Measurements, startup_of
) -> tuple[float | None, str]:
    """A run's seconds: its epochs at the median epoch time, plus ``startup_of`` (median or max) the start-ups."""
    if samples:
        epoch = statistics.median(sample["epoch_seconds"] for sample in samples)
        startup = startup_of([sample["startup_seconds"] for sample in samples])
        return startup + hparams["epochs"] * epoch, f"learned from {len(samples)} finished run(s)"
    step = measured.smoke_steps.get(hparams["model"])
    if step and measured.train_samples:
        steps_per_epoch = math.ceil(measured.train_samples / hparams["batch_size"])
        epoch = steps_per_epoch * step["seconds_per_step"]
        return (measured.smoke_startup_seconds or 0.0) + hparams["epochs"] * epoch, "from the smoke test's step"
    return None, ""


def _memory(samples: list[dict], train_job: Mapping) -> int:
    if train_job["mem_mb"] != AUTO:
        return train_job["mem_mb"]
    peaks = [sample["peak_host_memory_mb"] for sample in samples if sample.get("peak_host_memory_mb")]
    if not peaks:
        return train_job["unmeasured_mem_mb"]
    return max(MIN_MEM_MB, math.ceil(max(peaks) * train_job["safety_factor"] / 100) * 100)


def describe_requests(runs: Mapping[str, dict], requests: Mapping[str, Request], gpus: int) -> list[str]:
    """The dry run's lines: per distinct request, its runs and why; then the GPU-hours of first attempts."""
    by_reason: dict[tuple, list[str]] = {}
    for run_id, request in requests.items():
        hparams = runs[run_id]
        what = f"{hparams['model']}, batch {hparams['batch_size']}, {hparams['epochs']} epochs"
        by_reason.setdefault((what, request.why, request.mem_mb), []).append(run_id)
    lines = [
        f"train jobs ({what}; {len(run_ids)} run(s)) ask for {requests[run_ids[0]].minutes} min, {mem_mb} MB: {why}"
        for (what, why, mem_mb), run_ids in by_reason.items()
    ]
    asked = sum(gpus * request.minutes for request in requests.values()) / 60
    lines.append(f"the sweep asks for at most {asked:g} GPU-hours on first attempts")
    expected = [request.expected_minutes for request in requests.values()]
    if gpus and all(minutes is not None for minutes in expected):
        lines.append(f"and should use about {gpus * sum(expected) / 60:.3g} GPU-hours, by what was measured")
    return lines
