"""Stage 1: put a dataset's raw files under ``<data_root>/raw/<dataset>/`` with a manifest."""
