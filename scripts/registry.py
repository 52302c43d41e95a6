"""Analysis stage: merge every run's records, and every version the history keeps, into the SQLite registry."""

import argparse
import json
import logging
import os
from pathlib import Path

from mlpipe.analysis.registry import build_registry
from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    parser.add_argument("--database", type=Path, required=True, help="output: registry.sqlite")
    parser.add_argument("--provenance", type=Path, required=True, help="output: provenance.csv")
    parser.add_argument("--history-dir", type=Path, default=None, help="every version of every run (mlpipe.history)")
    parser.add_argument("--keep-weights", choices=("all", "tagged"), default="all", help="history.keep_weights")
    parser.add_argument("--profile", type=Path, default=None, help="the study's resource profile (mlpipe.requests)")
    args = parser.parse_args()
    count = build_registry(
        args.runs_dir,
        args.run_ids,
        args.database,
        args.provenance,
        args.history_dir,
        args.keep_weights,
        args.profile,
        os.environ,
    )
    logging.getLogger("mlpipe").info("registry of %d runs in %s", count, args.database)


if __name__ == "__main__":
    run_main(main)
