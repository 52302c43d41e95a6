"""Analysis stage: learning curves, test accuracy per sweep value, confusion matrix of the best run."""

import argparse
import json
from pathlib import Path

import pandas as pd

from mlpipe.analysis import plots
from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--swept", type=json.loads, required=True, help="JSON list of swept hyperparameters")
    parser.add_argument("--learning-curves", type=Path, required=True)
    parser.add_argument("--test-accuracy", type=Path, required=True)
    parser.add_argument("--confusion", type=Path, required=True)
    args = parser.parse_args()

    plots.plot_sweep(
        pd.read_csv(args.summary),
        args.runs_dir,
        args.swept,
        learning_curves=args.learning_curves,
        test_accuracy=args.test_accuracy,
        confusion=args.confusion,
    )


if __name__ == "__main__":
    run_main(main)
