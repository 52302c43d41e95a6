"""Download stage: put one dataset's raw files and manifest in a folder."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.download.stage import download_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=json.loads, required=True, help="the config's dataset section, as JSON")
    parser.add_argument("--raw-dir", type=Path, required=True)
    args = parser.parse_args()
    download_dataset(args.dataset, args.raw_dir)


if __name__ == "__main__":
    run_main(main)
