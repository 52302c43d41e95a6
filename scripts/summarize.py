"""Analysis stage: one table row per run (swept hyperparameters, seed, accuracies, time)."""

import argparse
import json
from pathlib import Path

from mlpipe.analysis.summary import summarize_runs, write_table
from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    parser.add_argument("--swept", type=json.loads, required=True, help="JSON list of swept hyperparameters")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_table(summarize_runs(args.runs_dir, args.run_ids, args.swept), args.out)


if __name__ == "__main__":
    run_main(main)
