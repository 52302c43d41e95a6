"""Analysis stage: per-run and per-configuration tables, resource use, excluded runs, best config."""

import argparse
import json
import os
from pathlib import Path

from mlpipe.analysis.summary import summarize_sweep
from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    parser.add_argument("--swept", type=json.loads, required=True, help="JSON list of swept hyperparameters")
    parser.add_argument("--study", type=json.loads, required=True, help="the study's folders and dataset, as JSON")
    # The tables also get an .html page beside them.
    for name in ("summary", "comparison", "resources", "cost", "excluded", "best-config"):
        parser.add_argument(f"--{name}", type=Path, required=True, help="output file")
    args = parser.parse_args()
    outputs = {
        "summary": args.summary,
        "comparison": args.comparison,
        "resources": args.resources,
        "cost": args.cost,
        "excluded": args.excluded,
        "best_config": args.best_config,
    }
    summarize_sweep(args.runs_dir, args.run_ids, args.swept, outputs, args.study, os.environ)


if __name__ == "__main__":
    run_main(main)
