"""Analysis stage of a successive-halving search: the ladder plot and the budget it used against the full grid."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.search.report import write_ladder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--promotions", type=Path, nargs="+", required=True, help="each rung's promotion (JSON)")
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of the finalists' run ids")
    parser.add_argument("--epochs", type=int, required=True, help="the full budget (train.epochs)")
    parser.add_argument("--budget", type=Path, required=True, help="output: budget table CSV (and .html beside it)")
    parser.add_argument("--plot", type=Path, required=True, help="output: ladder plot (PNG)")
    args = parser.parse_args()
    print(write_ladder(args.promotions, args.runs_dir, args.run_ids, args.epochs, args.budget, args.plot).to_string())


if __name__ == "__main__":
    run_main(main)
