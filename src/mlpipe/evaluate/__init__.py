"""Stage 4: test-set metrics of a trained run from its best checkpoint."""
