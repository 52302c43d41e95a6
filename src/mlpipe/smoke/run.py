"""``make smoke``: run the study's miniature with Snakemake, then say what passed, what failed and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlpipe.config import load_workflow_config
from mlpipe.io import write_text
from mlpipe.smoke.plan import SMOKE_FOLDER, STEPS_FOLDER
from mlpipe.smoke.report import format_report, job_outcomes, step_rows

REPORT_NAME = "smoke_report.txt"


def run_smoke(snakemake_args: list[str], workdir: Path, configfiles: list[Path]) -> tuple[int, str]:
    """Run every job of the miniature again (``--forceall``; a failure does not stop the others), then report.

    Returns Snakemake's exit status and the report, also written to ``<results_dir>/smoke/smoke_report.txt``.
    """
    logs = workdir / ".snakemake" / "log"
    before = set(logs.glob("*.snakemake.log"))
    command = [sys.executable, "-m", "snakemake", *snakemake_args, "--forceall", "--keep-going"]
    command += ["--config", "smoke=true"]
    status = subprocess.run(command, cwd=workdir).returncode
    written = sorted(set(logs.glob("*.snakemake.log")) - before, key=lambda path: path.stat().st_mtime)
    outcomes = job_outcomes(written[-1].read_text(), workdir) if written else []
    if not outcomes:
        return status or 1, "the smoke test ran no job: Snakemake stopped before (see its message above)"
    results = workdir / load_workflow_config(workdir, configfiles)["results_dir"] / SMOKE_FOLDER
    report = format_report(outcomes, step_rows(results / STEPS_FOLDER))
    write_text(results / REPORT_NAME, report + "\n")
    return status, report
