"""What each run records about itself: provenance, status, resource use, and per-epoch logs."""
