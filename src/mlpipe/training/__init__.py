"""Stage 3: the training engine (one run per process, or one per GPU under torchrun)."""
