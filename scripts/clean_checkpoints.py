"""Remove the resumable checkpoints of finished runs from scratch; unfinished runs keep theirs."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.study.cleanup import clean_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint-root", type=Path, required=True)
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    args = parser.parse_args()
    outcome = clean_checkpoints(args.checkpoint_root, args.runs_dir, args.run_ids)
    print(json.dumps(outcome))


if __name__ == "__main__":
    run_main(main)
