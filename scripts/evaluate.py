"""Evaluate stage: test-set metrics and confusion matrix of one run's best checkpoint."""

import argparse
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.evaluate.stage import evaluate_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--best", type=Path, required=True, help="best.pt of the run")
    parser.add_argument("--processed-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="output: evaluation JSON")
    parser.add_argument("--confusion", type=Path, required=True, help="output: confusion matrix CSV")
    parser.add_argument("--history-dir", type=Path, default=None, help="where the run's versions are kept")
    args = parser.parse_args()
    evaluate_run(args.best, args.processed_dir, args.metrics, args.confusion, history_dir=args.history_dir)


if __name__ == "__main__":
    run_main(main)
