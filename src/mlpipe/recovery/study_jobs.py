"""The SLURM jobs of a study that are still queued or running, as ``squeue`` lists them.

A job belongs to the study when Snakemake submitted it (its comment names the rule, ``rule_<name>...``) from
the study's folder (its working directory). Snakemake names jobs after an id of its own per invocation, so
this is how a Snakemake started later finds the jobs of one that died.
"""

from __future__ import annotations

import getpass
import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FIELDS = "%i|%T|%k|%Z"  # job (array task) id, state, comment, working directory


@dataclass(frozen=True)
class StudyJob:
    job_id: str  # <job> or <array job>_<task>
    state: str  # PENDING, RUNNING, ...
    rule: str

    def describe(self) -> str:
        return f"SLURM job {self.job_id} ({self.rule}, {self.state.lower()})"


def live_study_jobs(workdir: Path, environ: Mapping[str, str]) -> list[StudyJob] | None:
    """The study's queued and running jobs; None when ``squeue`` cannot tell (then say so, do not guess)."""
    user = environ.get("USER") or getpass.getuser()
    command = ["squeue", "--noheader", "--array", f"--user={user}", f"--format={FIELDS}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(environ))
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("cannot list this study's SLURM jobs (%s)", error)
        return None
    if result.returncode != 0:
        log.warning("cannot list this study's SLURM jobs (squeue: %s)", result.stderr.strip())
        return None
    return parse_squeue(result.stdout, workdir)


def parse_squeue(output: str, workdir: Path) -> list[StudyJob]:
    """The lines of ``squeue --format=FIELDS`` that are jobs Snakemake submitted from ``workdir``."""
    jobs = []
    for line in output.splitlines():
        fields = line.split("|", 3)
        if len(fields) < 4:
            continue
        job_id, state, comment, job_workdir = fields
        if comment.startswith("rule_") and _same_folder(job_workdir, workdir):
            jobs.append(StudyJob(job_id, state, comment.removeprefix("rule_").split("_wildcards_")[0]))
    return jobs


def _same_folder(reported: str, workdir: Path) -> bool:
    try:
        return Path(reported).resolve() == workdir.resolve()
    except OSError:
        return False
