"""Pack a finished study (results, report, registry, configs, best checkpoints) into one archive."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.study.archive import archive_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--run-ids", type=json.loads, required=True, help="JSON list of run ids")
    parser.add_argument("--config", type=json.loads, required=True, help="the resolved workflow config, as JSON")
    parser.add_argument("--out", type=Path, required=True, help="the archive to write (.tar.gz)")
    args = parser.parse_args()
    archive_study(args.results_dir, args.run_ids, args.config, args.out)


if __name__ == "__main__":
    run_main(main)
