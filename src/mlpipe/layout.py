"""Names of the files each stage leaves on disk: the contract between stages."""

from __future__ import annotations

from pathlib import Path

MANIFEST_NAME = "manifest.json"  # raw/<dataset>/: what download produced
META_NAME = "meta.json"  # processed/<dataset>/: classes, shape, normalisation, counts
SPLITS = ("train", "val", "test")


def processed_files(processed_dir: str | Path) -> list[Path]:
    """Every file preprocess writes, meta.json last."""
    processed_dir = Path(processed_dir)
    arrays = [processed_dir / f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels")]
    return [*arrays, processed_dir / META_NAME]
