"""The status of each run of a study, from its own ``run_info.json``, and as a table for a terminal.

Reads only what the runs record (and, on a cluster, ``squeue`` for what waits in the queue): no database,
no browser, and no lock, so it works while a Snakemake runs the study.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpipe.config import SCHEMA, check_config, load_schema, load_workflow_config
from mlpipe.hparams import without_budget
from mlpipe.io import read_json
from mlpipe.layout import SITE_RECORD_NAME, RunFiles
from mlpipe.recovery.run_lock import run_holder
from mlpipe.recovery.study_jobs import StudyJob, live_study_jobs
from mlpipe.tracking.run_record import RUNNING

WAITING, LOST = "waiting", "lost"


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str  # waiting, running, finished, stopped (at a halving rung), interrupted, failed, lost
    job: str | None  # the SLURM job (array task) that runs or ran it
    attempt: int | None
    epochs_done: int | None
    epochs: int
    val_acc: float | None  # of the last epoch done
    updated: str | None  # ISO time of the record's last change
    note: str = ""  # why it failed or was lost


def run_statuses(runs: Mapping[str, dict], runs_dir: Path, budget_may_grow: bool = False) -> list[RunStatus]:
    """Each run's status, in the study's order; ``budget_may_grow``: a successive-halving study, whose runs carry
    on under a raised train.epochs."""
    return [
        run_status(run_id, hparams, RunFiles.of(runs_dir / run_id).run_info, budget_may_grow)
        for run_id, hparams in runs.items()
    ]


def run_status(run_id: str, hparams: dict, run_info: Path, budget_may_grow: bool = False) -> RunStatus:
    try:
        info = read_json(run_info)
    except (OSError, ValueError):
        info = {}
    recorded = info.get("hparams")
    if budget_may_grow and recorded is not None:
        recorded, hparams_now = without_budget(recorded), without_budget(hparams)
    else:
        hparams_now = hparams
    if recorded != hparams_now:  # not started, or a record of an earlier version of the run
        return RunStatus(run_id, WAITING, None, None, None, hparams["epochs"], None, None)
    progress = info.get("progress") or {}
    state, note = info.get("status", WAITING), info.get("error", "")
    if state == RUNNING and info.get("state_dir") and run_holder(Path(info["state_dir"])) is None:
        # No process holds the run: its job ended without a word (killed, out of memory, node failure).
        state, note = LOST, "no live process holds it; its job ended without recording why (see its logs)"
    return RunStatus(
        run_id,
        state,
        info.get("provenance", {}).get("slurm_job_id"),
        info.get("attempts"),
        progress.get("epochs_done"),
        hparams["epochs"],
        progress.get("val_acc"),
        progress.get("updated") or info.get("end_time") or info.get("start_time"),
        note,
    )


def format_status(statuses: list[RunStatus], queued: list[StudyJob] | None, now: datetime.datetime) -> str:
    """A table, one line per run, then what each state counts and what the study has in SLURM's queue."""
    header = ("run", "state", "SLURM job", "attempt", "epochs", "val acc", "updated")
    rows = [
        (
            status.run_id,
            status.state,
            status.job or "-",
            str(status.attempt) if status.attempt else "-",
            f"{status.epochs_done or 0}/{status.epochs}",
            f"{status.val_acc:.4f}" if status.val_acc is not None else "-",
            _age(status.updated, now),
        )
        for status in statuses
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines += [f"{status.run_id}: {status.note}" for status in statuses if status.note]
    counts = Counter(status.state for status in statuses)
    lines.append(f"{len(statuses)} runs: " + ", ".join(f"{count} {state}" for state, count in counts.items()))
    if queued is not None:
        by_state = Counter(job.state.lower() for job in queued)
        listed = ", ".join(f"{count} {state}" for state, count in by_state.items()) or "none"
        lines.append(f"SLURM jobs of this study (squeue): {listed}")
    return "\n".join(lines)


def _age(timestamp: str | None, now: datetime.datetime) -> str:
    if not timestamp:
        return "-"
    seconds = (now - datetime.datetime.fromisoformat(timestamp)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def study_status(workflow_dir: Path, configfiles: list[Path], environ: Mapping[str, str]) -> str:
    """The table for the study that ``snakemake`` (with these ``--configfile`` files) runs in ``workflow_dir``."""
    config = load_workflow_config(workflow_dir, configfiles)
    runs = check_config(config, load_schema(workflow_dir / SCHEMA))
    results_dir = workflow_dir / config["results_dir"]
    on_cluster = (results_dir / SITE_RECORD_NAME).is_file()  # a study started with a SLURM profile
    queued = live_study_jobs(workflow_dir, environ) if on_cluster else None
    now = datetime.datetime.now(datetime.UTC)
    statuses = run_statuses(runs, results_dir / "runs", budget_may_grow=bool(config["sweep"]["halving"]))
    return format_status(statuses, queued, now)
