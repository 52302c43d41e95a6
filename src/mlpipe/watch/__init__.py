"""Watching a study while it runs: per run its state, its SLURM job, its attempt and how far it has trained,
read from what each run records (``make status``)."""
