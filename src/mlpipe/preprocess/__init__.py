"""Stage 2: turn raw files into split uint8 arrays and metadata under ``<data_root>/processed/``."""
