"""Analysis stage: learning curves, test accuracy per sweep value, best confusion matrix, resource use."""

import argparse
import json
from pathlib import Path

import pandas as pd

from mlpipe.analysis import plots
from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--comparison", type=Path, required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--swept", type=json.loads, required=True, help="JSON list of swept hyperparameters")
    for name in ("learning-curves", "test-accuracy", "confusion", "resources"):
        parser.add_argument(f"--{name}", type=Path, required=True, help="output PNG")
    args = parser.parse_args()
    outputs = {
        "learning_curves": args.learning_curves,
        "test_accuracy": args.test_accuracy,
        "confusion": args.confusion,
        "resources": args.resources,
    }
    plots.plot_sweep(pd.read_csv(args.summary), pd.read_csv(args.comparison), args.runs_dir, args.swept, outputs)


if __name__ == "__main__":
    run_main(main)
