"""Requests learned from measurements: what a train job asks SLURM for (walltime, memory), from what finished
runs of the same cost class used (``profile``), or from a smoke test's step times, with a stated safety factor
(``estimate``)."""
