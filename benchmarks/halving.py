"""Successive halving against the full grid on the built-in dataset: 27 configurations x 2 seeds.

The configurations are a seeded random sample (sweep.random) of learning rates, log-uniform over 1e-4..0.3, and
model widths (4, 8, 16 or 32), where they truly differ: the smallest rates barely learn in 9 epochs. Each study runs
through the real workflow in a fresh copy (`snakemake --cores N`): once as the full grid (every run to 9 epochs),
once with sweep.halving {eta: 3, min_epochs: 1} (27 configurations to 1 epoch, 9 to 3, 3 to 9). Prints the epochs
each trained (counted in its train jobs' logs), its wall time, and the configuration each chose (best mean
validation accuracy over seeds) with its mean test accuracy; and whether halving's choice lies within the 95%
interval of the grid's best configuration's test accuracy.
Target (issue 23): halving trains at most 30% of the grid's epochs, and its choice lies within that interval.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from workflow_copy import copy_workflow, measured_on, user_environment

EPOCH_LINE = re.compile(r"epoch \d+/\d+ ", re.MULTILINE)
SEARCH = {
    "train": {"epochs": 9},
    "sweep": {
        "grid": {},
        "seeds": [0, 1],
        "random": {
            "n": 27,
            "seed": 0,
            "space": {"lr": {"log_uniform": [1.0e-4, 0.3]}, "model_args.width": {"choice": [4, 8, 16, 32]}},
        },
    },
}


def run_study(folder: Path, halving: dict | None, cores: int) -> dict:
    """Run the search in a fresh copy of the workflow; its epochs, wall time and chosen configuration."""
    workdir = copy_workflow(folder)
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["train"].update(SEARCH["train"])
    config["sweep"] = {**SEARCH["sweep"], "halving": halving}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet"],
        cwd=workdir,
        env=user_environment(),
        check=True,
    )
    wall = time.perf_counter() - started
    logs = sorted((workdir / "results" / "logs").glob("train*/**/*.log"))
    comparison = pd.read_csv(workdir / "results" / "comparison.csv")
    return {
        "epochs": sum(len(EPOCH_LINE.findall(log.read_text())) for log in logs),
        "jobs": len(logs),
        "wall": wall,
        "best": comparison.iloc[0],  # ranked by mean validation accuracy over seeds, ties by validation loss
        "finalists": len(comparison),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    print(measured_on())
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        grid = run_study(Path(scratch) / "grid", None, args.cores)
        halving = run_study(Path(scratch) / "halving", {"eta": 3, "min_epochs": 1}, args.cores)
    low, high = grid["best"]["test_acc_ci95_low"], grid["best"]["test_acc_ci95_high"]
    chosen = halving["best"]["test_acc_mean"]
    for name, study in (("full grid", grid), ("halving, eta 3, 1-9 epochs", halving)):
        best = study["best"]
        print(
            f"{name:<28} {study['epochs']:>4} epochs in {study['jobs']:>3} train jobs, {study['wall']:6.1f} s; "
            f"chose {best['configuration']} (val {best['best_val_acc_mean']:.4f}, test {best['test_acc_mean']:.4f})"
        )
    share = halving["epochs"] / grid["epochs"]
    print(f"halving trained {share:.1%} of the grid's epochs   (target <= 30%)")
    print(
        f"its choice's test accuracy {chosen:.4f} against the grid's best {grid['best']['test_acc_mean']:.4f}, "
        f"95% CI [{low:.4f}, {high:.4f}]: {'within' if low <= chosen <= high else 'OUTSIDE'}   (target: within)"
    )


if __name__ == "__main__":
    main()
