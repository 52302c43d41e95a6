"""Analysis stage: the current pass of the study against its baseline, per configuration (table and plot)."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.history.report import write_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    parser.add_argument("--history-dir", type=Path, required=True)
    parser.add_argument("--baseline", default="", help="a tag's name; empty: the previous version of each run")
    parser.add_argument("--swept", type=json.loads, required=True, help="JSON list of swept hyperparameters")
    parser.add_argument("--table", type=Path, required=True, help="output: comparison CSV (and .html beside it)")
    parser.add_argument("--plot", type=Path, required=True, help="output: before/after plot (PNG)")
    args = parser.parse_args()
    write_comparison(
        args.runs_dir, args.run_ids, args.history_dir, args.baseline or None, args.swept, args.table, args.plot
    )


if __name__ == "__main__":
    run_main(main)
