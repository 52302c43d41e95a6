"""The study's passes and tags, and the current pass against its baseline, in the terminal (make history).

Run it in the workflow folder; give the same --configfile files as the snakemake command.
"""

import argparse
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.history.terminal import study_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="as given to snakemake")
    parser.add_argument("--baseline", default=None, help="a tag's name (default: compare.baseline of the config)")
    args = parser.parse_args()
    print(study_history(Path.cwd(), args.configfile, args.baseline))


if __name__ == "__main__":
    run_main(main)
