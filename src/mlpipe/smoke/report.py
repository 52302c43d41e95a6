"""What a smoke test found: per job its rule, whether it passed (or the error's one line), and its time, read from
Snakemake's own log of the run and each job's log; per model the time of one step at the study's largest batch."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlpipe.io import read_json

TIME = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
FINISHED = re.compile(r"^Finished jobid: (\d+) ")
FAILED = re.compile(r"^Error in rule (\w+):$")
FIELD = re.compile(r"^    (jobid|log|wildcards): (.*)$")
PASSED, FAILED_STATE, NOT_RUN = "passed", "FAILED", "not run"


@dataclass
class JobOutcome:
    rule: str
    wildcards: str = ""
    state: str = NOT_RUN
    seconds: float | None = None
    error: str = ""
    log: str = ""
    started: datetime.datetime | None = None


def job_outcomes(snakemake_log: str, workdir: Path) -> list[JobOutcome]:
    """Every job the run started, and for each rule the jobs it planned but never started (an earlier one failed)."""
    jobs: dict[str, JobOutcome] = {}
    planned: dict[str, int] = {}
    now, current, in_stats = None, None, False
    for line in snakemake_log.splitlines():
        if line.startswith("job ") and "count" in line:
            in_stats = True
        elif in_stats:
            fields = line.split()
            if len(fields) == 2 and fields[1].isdigit() and fields[0] != "total":
                planned[fields[0]] = int(fields[1])
            elif fields and fields[0] == "total":
                in_stats = False
        if found := TIME.match(line):
            now = datetime.datetime.strptime(found[1], "%a %b %d %H:%M:%S %Y")
        elif found := STARTED.match(line):
            current = JobOutcome(found[1], started=now)
        elif found := FAILED.match(line):
            current = None
            failed_rule = found[1]
        elif found := FIELD.match(line):
            key, value = found[1], found[2]
            if current is not None and key == "jobid":
                jobs[value] = current
            elif current is not None and key in ("log", "wildcards"):
                setattr(current, key, value.split(" (check")[0])
            elif current is None and key == "jobid" and value in jobs and jobs[value].rule == failed_rule:
                _end(jobs[value], FAILED_STATE, now, workdir)
        elif (found := FINISHED.match(line)) and found[1] in jobs:
            _end(jobs[found[1]], PASSED, now, None)
    outcomes = [job for job in jobs.values() if job.rule != "all"]
    for rule, count in planned.items():
        started = sum(job.rule == rule for job in jobs.values())
        outcomes += [JobOutcome(rule) for _ in range(count - started) if rule != "all"]
    return outcomes


def _end(job: JobOutcome, state: str, now: datetime.datetime | None, workdir: Path | None) -> None:
    job.state = state
    if now and job.started:
        job.seconds = (now - job.started).total_seconds()
    if workdir is not None and job.log:
        job.error = last_error(workdir / job.log)


def last_error(log: Path) -> str:
    """A failed job's one line: its log's last ``error:`` line (mlpipe's scripts end with one), else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log at {log}"
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(empty log)"])[-1]


def step_rows(steps_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(steps_dir.glob("*.json")):
        step = read_json(path)
        memory = (
            f"{step['peak_gpu_memory_mb']:.0f} of {step['gpu_memory_mb']:.0f} MB"
            if "peak_gpu_memory_mb" in step
            else "no GPU"
        )
        rows.append(
            {
                "model": step["model"],
                "batch": step["batch_size"],
                "device": step["device"],
                "precision": step["precision"],
                "s/step": f"{step['seconds_per_step']:.3f}",
                "images/s": f"{step['images_per_second']:.0f}",
                "peak GPU memory": memory,
            }
        )
    return rows


def format_report(outcomes: list[JobOutcome], steps: list[dict]) -> str:
    table = pd.DataFrame(
        [
            {
                "rule": job.rule,
                "job": job.wildcards or "-",
                "result": job.state,
                "seconds": "-" if job.seconds is None else f"{job.seconds:.0f}",
            }
            for job in outcomes
        ]
    )
    lines = [
        "Smoke test, every job of the study in miniature:",
        table.to_string(index=False) if len(table) else "no jobs",
    ]
    failures = [f"{job.rule} ({job.wildcards or 'no wildcards'}): {job.error}" for job in outcomes if job.error]
    if failures:
        lines += ["", "Why they failed:", *failures]
    lines += ["", "One training step at the study's largest batch size, per model:"]
    lines.append(pd.DataFrame(steps).to_string(index=False) if steps else "none measured (see above)")
    failed = sum(job.state != PASSED for job in outcomes)
    lines += ["", f"{failed} of {len(outcomes)} jobs did not pass" if failed else f"all {len(outcomes)} jobs passed"]
    return "\n".join(lines)
