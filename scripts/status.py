"""Where each run of the study stands: state, SLURM job, attempt, epochs trained (`make status`).

Run it in the workflow folder, while a Snakemake runs the study or after; give the same --configfile files as
the snakemake command.
"""

import argparse
import os
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.watch.status import study_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="as given to snakemake")
    args = parser.parse_args()
    print(study_status(Path.cwd(), args.configfile, os.environ))


if __name__ == "__main__":
    run_main(main)
