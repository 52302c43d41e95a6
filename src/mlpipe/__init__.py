"""mlpipe: a reproducible download -> preprocess -> train -> evaluate -> report pipeline for SLURM clusters."""

__version__ = "0.1.0"
