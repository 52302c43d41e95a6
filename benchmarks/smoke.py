"""Wall time of `make smoke` for the default study, locally, from a fresh copy of the workflow.

Copies the workflow into a temp folder (no data, results or Snakemake metadata) and runs the smoke test there as
`make smoke` does (`python scripts/smoke.py --cores N`): download, preprocess, one epoch of the first run on a
subset, one training step at the largest batch, evaluate and the analysis jobs. Prints the wall time of each of
`--repeats` runs (the first from nothing; later ones have the data and the Snakemake metadata, as a user's second
`make smoke` does) and the number of jobs that passed. Target (issue 22): at most 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workflow_copy import copy_workflow, measured_on, user_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(measured_on())
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        workdir = copy_workflow(Path(scratch))
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "scripts/smoke.py", "--cores", str(args.cores)],
                cwd=workdir,
                env=user_environment(),
                capture_output=True,
                text=True,
            )
            seconds.append(time.perf_counter() - started)
            if result.returncode != 0:
                sys.exit(f"the smoke test failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    passed = re.search(r"all (\d+) jobs passed", result.stdout)
    print(f"jobs passed                 {passed[1] if passed else '?'}")
    print(f"first run (nothing there)   {seconds[0]:.1f} s   (target <= 15 s on 2 cores)")
    if len(seconds) > 1:
        print(f"later runs, median          {statistics.median(seconds[1:]):.1f} s")


if __name__ == "__main__":
    main()
