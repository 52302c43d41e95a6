"""Wall time of `snakemake -n` over a 1,000-run sweep (10 x 10 grid x 10 seeds), locally and with profiles/osc.

Copies the workflow into a fresh temp folder (nothing run yet, so every job is planned: 1,000 train and
1,000 evaluate jobs and the rest), writes the sweep to a config file given with --configfile, and runs
the dry run --repeat times each way. Prints the fastest and the median wall time and the jobs planned.
Target (issue 11): <= 5 s for `snakemake -n --cores 1 --configfile big.yaml`.

The machine's speed drifts, so figures from different hours do not compare. --baseline REV also times the
workflow of git revision REV locally, each of its runs next to one of this checkout's, and prints how many
times faster this checkout is in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from workflow_copy import REPO, copy_workflow, measured_on, user_environment

SWEEP = {
    "grid": {
        "lr": [round(0.01 * i, 2) for i in range(1, 11)],
        "weight_decay": [round(0.0001 * i, 4) for i in range(1, 11)],
    },
    "seeds": list(range(10)),
}
WAYS = {
    "local: snakemake -n --cores 1": ["--cores", "1"],
    "OSC: snakemake --profile profiles/osc -n": ["--profile", "profiles/osc"],
}


def with_sweep(workdir: Path) -> Path:
    """``workdir`` with the 1,000-run sweep written to big.yaml."""
    (workdir / "big.yaml").write_text(yaml.safe_dump({"sweep": SWEEP}))
    return workdir


def revision_copy(revision: str, destination: Path) -> Path:
    """The files of git revision ``revision`` of this repository in ``destination``."""
    destination.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


def timed_dry_run(workdir: Path, way: list[str], env: dict) -> tuple[float, str]:
    """Seconds that one dry run of the big sweep took, and the number of jobs it planned."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *way, "-n", "--configfile", "big.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    return seconds, re.search(r"^total\s+(\d+)$", result.stdout, re.MULTILINE).group(1)


def row(label: str, seconds: list[float], jobs: str) -> str:
    return f"{label:<42}{min(seconds):>8.2f}s{statistics.median(seconds):>8.2f}s{jobs:>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time git revision REV, interleaved, locally")
    args = parser.parse_args()
    print(measured_on())

    with tempfile.TemporaryDirectory(prefix="mlpipe-dry-run-") as scratch:
        workdir = with_sweep(copy_workflow(Path(scratch) / "project"))
        env = user_environment(
            OSC_ACCOUNT="PAS1234",
            OSC_CLUSTER="cardinal",  # whose H100s this machine's PyTorch (PyPI's CUDA 13 build) has kernels for
            OSC_SCRATCH=str(Path(scratch) / "scratch"),
        )
        rows = []
        for label, way in WAYS.items():
            runs = [timed_dry_run(workdir, way, env) for _ in range(args.repeat)]
            rows.append(row(label, [seconds for seconds, _ in runs], runs[-1][1]))
        if args.baseline:
            baseline_dir = with_sweep(revision_copy(args.baseline, Path(scratch) / "baseline"))
            local = WAYS["local: snakemake -n --cores 1"]
            pairs = [
                (timed_dry_run(baseline_dir, local, env), timed_dry_run(workdir, local, env))
                for _ in range(args.repeat)
            ]
            baseline_seconds = [baseline for (baseline, _), _ in pairs]
            current_seconds = [current for _, (current, _) in pairs]
            rows.append(row(f"local, revision {args.baseline}", baseline_seconds, pairs[-1][0][1]))
            rows.append(row("local, this checkout, interleaved", current_seconds, pairs[-1][1][1]))
            speedup = statistics.median(baseline_seconds) / statistics.median(current_seconds)

    print(f"{'dry run of a 1,000-run sweep':<42}{'fastest':>9}{'median':>9}{'jobs':>7}")
    print(*rows, sep="\n")
    if args.baseline:
        print(f"this checkout is {speedup:.1f} times as fast as {args.baseline} (medians, same minutes)")
    print(f"target: <= 5 s (cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
