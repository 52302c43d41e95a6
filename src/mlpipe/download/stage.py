"""Entry point of the download stage: fetch one dataset into its raw folder."""

from __future__ import annotations

import logging
from pathlib import Path

from mlpipe.download.builtin import export_digits
from mlpipe.io import write_json
from mlpipe.layout import MANIFEST_NAME

log = logging.getLogger(__name__)


def download_dataset(dataset_config: dict, raw_dir: Path) -> Path:
    """Put the raw files of ``dataset_config["name"]`` in ``raw_dir``; return the manifest path."""
    name = dataset_config["name"]
    raw_dir.mkdir(parents=True, exist_ok=True)
    if name == "digits":
        manifest = export_digits(raw_dir)
    else:
        raise ValueError(f"dataset.name: no download for {name!r}")
    manifest_path = raw_dir / MANIFEST_NAME
    write_json(manifest_path, manifest)  # written last: its presence means the raw data is complete
    log.info("raw %s data in %s", name, raw_dir)
    return manifest_path
