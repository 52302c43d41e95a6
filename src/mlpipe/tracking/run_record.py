"""``run_info.json``: a run's status, provenance and resource use, kept up to date while it trains.

Each run writes only its own file (atomically), so any number of jobs on a shared filesystem
(NFS, GPFS) can write at once; the analysis stage merges the files into the SQLite registry.
The file is not a declared Snakemake output, so it survives a failed job and shows why it ended.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from mlpipe.io import read_json, write_json

RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"
STOPPED = "stopped"  # trained to a halving rung (mlpipe.search.halving): done unless a later rung continues it


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class RunRecord:
    def __init__(
        self,
        path: Path,
        run_id: str,
        hparams: dict,
        provenance: dict,
        requested: dict,
        state_dir: Path | None = None,
    ):
        self.path = path
        earlier = read_json(self.path) if self.path.exists() else {}
        self.info = {
            "run_id": run_id,
            "status": RUNNING,
            # Where its resumable state lives (scratch on a cluster), for clean_checkpoints.
            "state_dir": None if state_dir is None else str(state_dir),
            "start_time": now(),
            "end_time": None,
            "attempts": earlier.get("attempts", 0) + 1 if earlier.get("status") != FINISHED else 1,
            "hparams": hparams,
            "provenance": provenance,
            "requested": requested,
            "usage": {},
            "trackers": earlier.get("trackers", {}),
            # One entry per attempt of this version of the run: what its job asked for and what it used.
            "attempt_log": earlier.get("attempt_log", []) if earlier.get("status") != FINISHED else [],
        }
        if earlier.get("status") in (INTERRUPTED, RUNNING, FAILED, STOPPED):
            self.info["first_start_time"] = earlier.get("first_start_time", earlier.get("start_time"))
        write_json(self.path, self.info)

    def update(self, **fields) -> None:
        self.info.update(fields)
        write_json(self.path, self.info)

    def end(self, status: str, **fields) -> None:
        usage = fields.get("usage", self.info["usage"])
        attempt = {
            "attempt": self.info["attempts"],
            "slurm_job_id": self.info["provenance"].get("slurm_job_id"),
            "status": status,
            "requested": self.info["requested"],
            "wall_seconds": usage.get("wall_seconds"),
        }
        self.update(status=status, end_time=now(), attempt_log=[*self.info["attempt_log"], attempt], **fields)
