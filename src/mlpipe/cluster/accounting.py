"""What SLURM's accounting says jobs used: the elapsed time of each, by job (or array task) id.

The trainer's own clock starts after Python, torch and the job step have started; SLURM's counts the whole job, as
it is charged. Read on the login node, in one ``sacct`` call.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)


def elapsed_seconds(job_ids: Iterable[str], environ: Mapping[str, str]) -> dict[str, float]:
    """``{job id: seconds}`` for the jobs ``sacct`` knows; empty without SLURM accounting (a local study)."""
    wanted = sorted({job_id for job_id in job_ids if job_id})
    if not wanted:
        return {}
    command = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,ElapsedRaw"]
    try:
        result = subprocess.run(
            [*command, f"--jobs={','.join(wanted)}"], capture_output=True, text=True, timeout=120, env=dict(environ)
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("sacct cannot tell what the jobs used (%s): the trainers' own clocks stand in", error)
        return {}
    if result.returncode != 0:
        log.warning("sacct cannot tell what the jobs used (%s)", result.stderr.strip())
        return {}
    return parse_sacct(result.stdout, set(wanted))


def parse_sacct(output: str, wanted: set[str]) -> dict[str, float]:
    elapsed = {}
    for line in output.splitlines():
        job_id, _, seconds = line.partition("|")
        if job_id in wanted and seconds.isdigit():
            elapsed[job_id] = float(seconds)
    return elapsed
