"""What a Snakemake that died left running: its SLURM jobs still queued or running, and trainers still holding
their runs (a local trainer outlives a killed Snakemake too). A Snakemake started afterwards waits for them
before it plans anything, so it never submits a run a second time while its first job may still train it;
what they finish it then takes as done (:mod:`mlpipe.recovery.snakemake_state`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpipe.recovery.run_lock import holder_description, run_holder
from mlpipe.recovery.study_jobs import StudyJob, live_study_jobs


@dataclass(frozen=True)
class Leftovers:
    jobs: tuple[StudyJob, ...]  # the study's SLURM jobs, queued or running
    held_runs: tuple[tuple[str, dict], ...]  # (run id, holder) of each run a live trainer holds

    def __bool__(self) -> bool:
        return bool(self.jobs or self.held_runs)

    def describe(self) -> str:
        training = {holder.get("slurm_job_id") for _, holder in self.held_runs}
        parts = [f"{run_id} (trained by {holder_description(holder)})" for run_id, holder in self.held_runs]
        parts += [job.describe() for job in self.jobs if job.job_id not in training]
        return "; ".join(parts)


def find_leftovers(state_dirs: Mapping[str, Path], workdir: Path | None, environ: Mapping[str, str]) -> Leftovers:
    """Runs held by live trainers, and (with ``workdir``, on a SLURM site) the study's live SLURM jobs."""
    held = tuple((run_id, holder) for run_id, folder in state_dirs.items() if (holder := run_holder(folder)))
    jobs = live_study_jobs(workdir, environ) if workdir is not None else None
    return Leftovers(tuple(jobs or ()), held)


def wait_for_leftovers(find: Callable[[], Leftovers], say: Callable[[str], None], poll_seconds: float) -> None:
    """Return once ``find`` finds nothing left, saying what it waits for, and again whenever that changes."""
    leftovers = find()
    if not leftovers:
        return
    say(
        f"waiting for what an earlier Snakemake of this study left queued or running: {leftovers.describe()}. "
        f"Nothing is submitted before they end (checked every {poll_seconds:g} s); Ctrl-C stops waiting and "
        "leaves them running"
    )
    while leftovers:
        time.sleep(poll_seconds)
        found = find()
        if found and found != leftovers:
            say(f"still waiting for {found.describe()}")
        leftovers = found
    say("they have ended: what they finished counts as done, the rest runs now")
