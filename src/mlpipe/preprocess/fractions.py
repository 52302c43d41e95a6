"""New split fractions checked when the workflow is parsed, against the class counts the last preprocess recorded.

Fractions that leave a class without training images are refused by preprocess (``SplitError``), but by then
Snakemake has deleted the processed arrays to make them again: undoing the mistake preprocesses and retrains every
run. The counts of each class in each raw split do not depend on the fractions, so preprocess records them in
``meta.json`` with the *basis* they were counted on (the raw manifest, the dataset settings but the split, and
the lab's Dataset code). While the basis holds, other fractions are checked at parse time, before
any job: the same message, and nothing deleted. When it does not hold, preprocess runs anyway and checks them itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from mlpipe.layout import MANIFEST_NAME, META_NAME
from mlpipe.preprocess.split import check_split, planned_split_counts
from mlpipe.user_sources import source_checksum

COUNTS_KEY = "source_counts"  # meta.json: {raw split: examples per class}
SPLIT_KEYS = ("val_fraction", "test_fraction", "split_seed")


def split_basis(raw_dir: Path, dataset_settings: Mapping) -> str:
    """A checksum of what the class counts of the raw data depend on; '' before download has run."""
    manifest = Path(raw_dir) / MANIFEST_NAME
    if not manifest.is_file():
        return ""
    reading = {key: value for key, value in dataset_settings.items() if key not in SPLIT_KEYS}
    custom = dataset_settings.get("custom")
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(json.dumps(reading, sort_keys=True).encode())
    digest.update(source_checksum(custom["class"]).encode() if custom else b"")
    return digest.hexdigest()[:16]


def check_fractions(processed_dir: Path, basis: str, val_fraction: float, test_fraction: float) -> None:
    """Raise SplitError, as preprocess would, when these fractions do not fit the data last preprocessed on the
    same ``basis``; do nothing when there is no such record (preprocess will check)."""
    meta_file = Path(processed_dir) / META_NAME
    if not basis or not meta_file.is_file():
        return
    try:
        meta = json.loads(meta_file.read_text())
        recorded, source_counts, classes = meta["split"], meta[COUNTS_KEY], meta["classes"]
    except (ValueError, KeyError, TypeError):
        return  # an older or damaged meta.json: preprocess reruns anyway or training reports it
    if recorded.get("basis") != basis:
        return
    if (recorded["val_fraction"], recorded["test_fraction"]) == (val_fraction, test_fraction):
        return
    counts = planned_split_counts(source_counts, val_fraction, test_fraction)
    check_split(counts, set(source_counts), classes, val_fraction, test_fraction)
