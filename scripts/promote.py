"""Successive halving's checkpoint after a rung: rank its configurations by mean validation accuracy over seeds and
name the ones that go on to the next rung."""

import argparse
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.io import read_json
from mlpipe.search.report import write_promotion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=Path, nargs="+", required=True, help="the rung's records, one per run")
    parser.add_argument("--epochs", type=int, required=True, help="the epochs the rung trained to")
    parser.add_argument("--keep", type=int, required=True, help="configurations that go on")
    parser.add_argument("--out", type=Path, required=True, help="output: the ranking and the promoted (JSON)")
    args = parser.parse_args()
    promotion = write_promotion([read_json(path) for path in args.records], args.epochs, args.keep, args.out)
    print(f"after {args.epochs} epoch(s), promoted: {', '.join(promotion['promoted'])}")


if __name__ == "__main__":
    run_main(main)
