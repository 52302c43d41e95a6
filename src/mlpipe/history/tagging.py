"""``make tag NAME=...``: name the current pass, once every run of the study is done and up to date."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlpipe.history.passes import create_tag
from mlpipe.history.report import current_pass
from mlpipe.history.store import load_versions
from mlpipe.history.versions import code_files
from mlpipe.hparams import hparams_digest


def not_ready(runs_dir: Path, digests: Mapping[str, str], history_dir: Path) -> dict[str, str]:
    """``{run id: why}`` for each run of the study whose current version is missing, unevaluated or out of date."""
    history = load_versions(history_dir)
    current = current_pass(runs_dir, list(digests))
    reasons = {}
    for run_id, digest in digests.items():
        found = history.get(run_id, {}).get(current.get(run_id, ""))
        if found is None:
            reasons[run_id] = "not trained"
        elif found.evaluation is None:
            reasons[run_id] = "not evaluated"
        elif hparams_digest(found.record["hparams"]) != digest:
            reasons[run_id] = "its settings changed since it trained"
        elif found.record.get("code") != code_files(found.record["hparams"]["model"]):
            reasons[run_id] = "its code changed since it trained"
    return reasons


def tag_current_pass(name: str, runs_dir: Path, digests: Mapping[str, str], history_dir: Path) -> dict:
    """Write the tag; :class:`~mlpipe.history.passes.TagError` if the name is taken or a run is not ready."""
    reasons = not_ready(runs_dir, digests, history_dir)
    return create_tag(history_dir, name, current_pass(runs_dir, list(digests)), reasons)
