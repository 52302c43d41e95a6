"""Wall time of `snakemake -n` over a 1,000-run sweep (10 x 10 grid x 10 seeds), locally and with profiles/osc.

Copies the workflow into a fresh temp folder (nothing run yet, so every job is planned: 1,000 train and
1,000 evaluate jobs and the rest), writes the sweep to a config file given with --configfile, and runs
the dry run --repeat times each way. Prints the fastest and the median wall time and the jobs planned.
Target (issue 11): <= 5 s for `snakemake -n --cores 1 --configfile big.yaml`.
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
from workflow_copy import copy_workflow, user_environment

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlpipe-dry-run-") as scratch:
        workdir = copy_workflow(Path(scratch) / "project")
        (workdir / "big.yaml").write_text(yaml.safe_dump({"sweep": SWEEP}))
        env = user_environment(
            OSC_ACCOUNT="PAS1234",
            OSC_CLUSTER="cardinal",  # whose H100s this machine's PyTorch (PyPI's CUDA 13 build) has kernels for
            OSC_SCRATCH=str(Path(scratch) / "scratch"),
        )
        rows = []
        for label, way in WAYS.items():
            seconds, jobs = [], None
            for _ in range(args.repeat):
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "snakemake", *way, "-n", "--configfile", "big.yaml"],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                seconds.append(time.perf_counter() - started)
                jobs = re.search(r"^total\s+(\d+)$", result.stdout, re.MULTILINE).group(1)
            rows.append((label, min(seconds), statistics.median(seconds), jobs))

    print(f"{'dry run of a 1,000-run sweep':<42}{'fastest':>9}{'median':>9}{'jobs':>7}")
    for label, fastest, median, jobs in rows:
        print(f"{label:<42}{fastest:>8.2f}s{median:>8.2f}s{jobs:>7}")
    print(f"target: <= 5 s (cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
