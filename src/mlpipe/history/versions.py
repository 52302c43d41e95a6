"""What a finished run keeps in the history store: the record of its version, then (evaluate) its test metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlpipe.history.store import record_version
from mlpipe.tracking.run_record import now
from mlpipe.user_code import parse_reference
from mlpipe.user_sources import source_files

CODE_PACKAGES = ("models", "training")  # of mlpipe: what the weights depend on


def keep_version(history_dir: Path, run_config: dict, progress_rows: list, provenance: dict, meta: dict, best: Path):
    """Record the finished version ``run_config`` describes (its ``version`` set), with its best weights."""
    hparams = run_config["hparams"]
    record = run_config | {
        "finished": now(),
        "provenance": provenance,
        "code": code_files(hparams["model"]),
        "data": {"dataset": meta["dataset"], "checksum": data_checksum(meta)},
        "metrics": progress_rows,
    }
    record_version(history_dir, record, best)


def code_files(model: str) -> dict[str, str]:
    """A checksum per file of the code behind the run's weights: mlpipe's models and training code, and a lab's
    model files (as resuming compares them), named relative to the checkout."""
    package = Path(__file__).resolve().parents[1]
    root = package.parents[1]
    reference = parse_reference(model)
    files = [path for name in CODE_PACKAGES for path in sorted((package / name).rglob("*.py"))]
    files += source_files(reference) if reference else []
    return {
        (path.relative_to(root) if path.is_relative_to(root) else path).as_posix(): hashlib.sha256(
            path.read_bytes()
        ).hexdigest()[:12]
        for path in files
    }


def data_checksum(meta: dict) -> str:
    """The processed dataset's identity: the checksums of its arrays (its whole meta.json when it has none)."""
    described = meta.get("checksums") or meta
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
