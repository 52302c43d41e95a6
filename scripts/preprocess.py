"""Preprocess stage: split a raw dataset into uint8 train/val/test arrays with metadata."""

import argparse
import json
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.preprocess.stage import preprocess_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=json.loads, required=True, help="the config's dataset section, as JSON")
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--processed-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1, help="threads decoding image files")
    args = parser.parse_args()
    preprocess_dataset(args.raw_dir, args.processed_dir, args.dataset, threads=args.threads)


if __name__ == "__main__":
    run_main(main)
