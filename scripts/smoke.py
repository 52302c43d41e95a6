"""Test small first (make smoke): the study's whole DAG in miniature, then a table of what passed and failed.

Arguments go to snakemake as given: `python scripts/smoke.py --cores 2`, or `--profile profiles/osc` (the site's
debug partitions). Give the study's --configfile files as you give them to snakemake.
"""

import sys
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.smoke.run import run_smoke


def main() -> None:
    arguments = sys.argv[1:]
    configfiles = [Path(arguments[index + 1]) for index, word in enumerate(arguments[:-1]) if word == "--configfile"]
    status, report = run_smoke(arguments, Path.cwd(), configfiles)
    print(report)
    sys.exit(status)


if __name__ == "__main__":
    run_main(main)
