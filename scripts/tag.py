"""Name the study's current pass (make tag NAME=...): refused while a run is not done, or if the name is taken."""

import argparse
import json
import logging
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.history.tagging import tag_current_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="", help="the tag's name")
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--history-dir", type=Path, required=True)
    parser.add_argument(
        "--hparams-digests", type=json.loads, required=True, help="JSON {run id: digest of its hyperparameters}"
    )
    args = parser.parse_args()
    tag = tag_current_pass(args.name, args.runs_dir, args.hparams_digests, args.history_dir)
    logging.getLogger("mlpipe").info("tagged the current pass of %d runs as %r", len(tag["runs"]), tag["name"])


if __name__ == "__main__":
    run_main(main)
