"""Snakemake's own records of a study, read and written through its API, in this one place.

Snakemake records what made each output (rule, parameters, inputs) when one of its jobs ends. A job whose
Snakemake died before it ended leaves no record: its outputs are taken as done, but no edit of code or
settings would ever rerun it. So each Snakemake notes the jobs it starts (by their first output, with what
identifies them), and the next one records Snakemake's metadata for those that finished without it, as the
dead one would have. One that finished under other code or settings than the current ones is not taken as
done: its outputs, and what was made from them, are removed, so that it all runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlpipe.io import read_json, write_json

STARTED_JOBS = "mlpipe/started-jobs.json"  # in Snakemake's folder (.snakemake): {first output: identity}


def folder_locked(workdir: Path) -> bool:
    """Whether a Snakemake holds (or a dead one left) the folder's lock: Snakemake refuses to run until
    ``--unlock``."""
    return any((workdir / ".snakemake" / "locks").glob("*.lock"))


def job_identity(job: Any) -> str:
    """What makes a job the same job: its rule, parameters (the code checksums among them) and inputs."""
    described = {
        "rule": job.rule.name,
        "params": dict(job.params.items()),
        "input": sorted(str(path) for path in job.input),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:20]


class JobsChangedError(RuntimeError):
    """Jobs finished without their Snakemake under other code, settings or inputs than the current ones."""


def take_over_earlier_jobs(workflow: Any, say: Callable[[str], None]) -> None:
    """At the start of a run: adopt what an earlier Snakemake's jobs finished without it, then note this one's.

    Raises :class:`JobsChangedError` (their outputs removed) for jobs that finished under what has changed since.
    """
    adopted, changed = adopt_jobs_finished_without_snakemake(workflow)
    if adopted:
        say(f"{len(adopted)} job(s) finished after the Snakemake that started them ended: taken as done")
    if changed:
        # What was made from them is as stale: without its outputs, Snakemake runs all of it again.
        remove_outputs(workflow.dag.bfs(workflow.dag.depending, *changed))
        raise JobsChangedError(
            f"{', '.join(map(describe, changed))} finished after the Snakemake that started them ended, under "
            "other code, settings or inputs than now: their outputs and what was made from them are removed; "
            "run the same command again to redo them"
        )
    note_started_jobs(workflow)


def describe(job: Any) -> str:
    """``train (run=lr-0.05_seed-0)``."""
    wildcards = ", ".join(f"{name}={value}" for name, value in job.wildcards_dict.items())
    return f"{job.rule.name} ({wildcards})" if wildcards else job.rule.name


def adopt_jobs_finished_without_snakemake(workflow: Any) -> tuple[list, list]:
    """Record Snakemake's metadata for the jobs an earlier Snakemake started that finished after it died.

    Returns (adopted, changed): ``changed`` are those whose code, settings or inputs differ from the
    current ones; their outputs are left for the caller to remove.
    """
    started = _read_started(workflow)
    dag, adopted, changed = workflow.dag, [], []
    for job in dag.jobs:
        identity = started.get(_key(job))
        if identity is None or dag.needrun(job) or not dag.reason(job).no_metadata:
            continue
        if identity == job_identity(job):
            workflow.async_run(workflow.persistence.finished(job))
            adopted.append(job)
        else:
            changed.append(job)
    return adopted, changed


def remove_outputs(jobs: Iterable) -> None:
    """Remove the outputs of ``jobs``, as Snakemake does before it runs a job again."""
    for job in jobs:
        for output in job.output:
            Path(output).unlink(missing_ok=True)


def note_started_jobs(workflow: Any) -> None:
    """Note the jobs this Snakemake will start, keeping the notes of an earlier one still unresolved."""
    started = _read_started(workflow)
    dag = workflow.dag
    for job in dag.jobs:  # resolved: recorded by Snakemake (it has metadata), or about to run again
        if _key(job) in started and (dag.needrun(job) or not dag.reason(job).no_metadata):
            del started[_key(job)]
    started |= {_key(job): job_identity(job) for job in dag.needrun_jobs() if job.output}
    write_json(_started_file(workflow), started)


def _key(job: Any) -> str | None:
    return str(job.output[0]) if job.output else None


def _started_file(workflow: Any) -> Path:
    return Path(workflow.persistence.path) / STARTED_JOBS


def _read_started(workflow: Any) -> dict[str, str]:
    try:
        started = read_json(_started_file(workflow))
    except (OSError, ValueError):
        return {}
    return started if isinstance(started, dict) else {}
