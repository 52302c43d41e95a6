"""Python's cyclic garbage collector in the Snakemake process, set for planning thousands of jobs.

Snakemake allocates millions of small objects while it builds the jobs of a large sweep. With
Python's default thresholds the collector runs hundreds of times, and each full pass walks again
every object of the libraries Snakemake has imported (pandas and SQLAlchemy among them): about a
fifth of `snakemake -n` over a 1,000-run sweep (benchmarks/dry_run.py). Memory is still freed
as before: reference counting frees almost everything, and cycles are still collected.
"""

from __future__ import annotations

import gc

# Allocations (minus frees) between two collections of the youngest generation; Python's default is 700.
YOUNGEST_GENERATION_THRESHOLD = 20_000


def settle_parsed_workflow() -> None:
    """Leave what exists once the workflow is parsed out of every later collection, and collect less often.

    Called at the end of the parse. One full collection first frees the parse's own cyclic garbage; what
    is left (the imported modules, the config, the rules) lives as long as the process, so walking it
    again could never free anything.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_GENERATION_THRESHOLD, middle, oldest)
