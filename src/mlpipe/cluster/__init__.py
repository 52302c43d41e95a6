"""How the workflow's generic job needs map onto a SLURM site (partitions, scratch, limits)."""
