"""Passes and tags: the sets of run versions a study had, and the names a lab gives the important ones.

A pass is the study's current versions (one per run): the registry job records one whenever they change, so
each turn of the lab's loop (edit, rerun) leaves one. A tag names the current pass (``make tag NAME=baseline``);
tagged versions keep their weights whatever ``history.keep_weights`` says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mlpipe.history.store import WEIGHTS, Version
from mlpipe.io import read_json, write_json
from mlpipe.tracking.run_record import now

TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class BaselineError(ValueError):
    """A baseline that does not exist; the message is one line."""


def check_baseline(baseline: str | None, tags: Mapping) -> None:
    """A baseline named in the config is a tag of the study."""
    if baseline is not None and baseline not in tags:
        raise BaselineError(f"compare.baseline: no tag {baseline!r}; tags: {', '.join(sorted(tags)) or 'none yet'}")


class TagError(ValueError):
    """A tag that cannot be made; the message is one line."""


def load_passes(history_dir: Path) -> list[dict]:
    """Every pass, oldest first: ``{"number": 1, "created": ..., "runs": {run id: version}}``."""
    return _load_all(history_dir / "passes")


def load_tags(history_dir: Path) -> dict[str, dict]:
    """``{name: {"name", "created", "runs": {run id: version}}}``."""
    return {tag["name"]: tag for tag in _load_all(history_dir / "tags")}


def record_pass(history_dir: Path, current: dict[str, str]) -> dict | None:
    """Record the current versions as a pass, unless they are the latest pass already; return the new pass."""
    passes = load_passes(history_dir)
    if not current or (passes and passes[-1]["runs"] == current):
        return None
    study_pass = {"number": len(passes) + 1, "created": now(), "runs": dict(current)}
    write_json(history_dir / "passes" / f"{study_pass['number']:05d}.json", study_pass)  # one writer: the registry
    return study_pass


def create_tag(history_dir: Path, name: str, current: dict[str, str], not_ready: dict[str, str]) -> dict:
    """Name the current pass; refuse a name already used, or a study with runs not finished and evaluated."""
    if not name:
        raise TagError("tag: give the tag a name: make tag NAME=<name> (snakemake --cores 1 tag --config tag=<name>)")
    if not TAG_NAME.match(name):
        raise TagError(f"tag: {name!r} is not a tag name (letters, digits, '.', '_', '-'; a letter or digit first)")
    tags = load_tags(history_dir)
    if name in tags:
        raise TagError(f"tag: {name!r} already names the pass of {tags[name]['created']}; choose another name")
    if not_ready:
        listed = ", ".join(f"{run_id} ({why})" for run_id, why in sorted(not_ready.items()))
        raise TagError(
            f"tag: not tagging {name!r}: {len(not_ready)} run(s) of the study are not done: {listed}; "
            "run the study first (snakemake)"
        )
    tag = {"name": name, "created": now(), "runs": dict(current)}
    write_json(history_dir / "tags" / f"{name}.json", tag)
    return tag


def prune_weights(versions: dict[str, dict[str, Version]], current: dict[str, str], tags: dict[str, dict]) -> int:
    """Delete the weights of versions that are neither current nor tagged (``history.keep_weights: tagged``)."""
    kept = {(run_id, version) for run_id, version in current.items()}
    kept |= {(run_id, version) for tag in tags.values() for run_id, version in tag["runs"].items()}
    pruned = 0
    for run_id, by_version in versions.items():
        for version, found in by_version.items():
            if (run_id, version) not in kept and found.has_weights:
                (found.folder / WEIGHTS).unlink()
                pruned += 1
    return pruned


def _load_all(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    return [read_json(path) for path in sorted(folder.glob("*.json"))]


def archived_history(history_dir: Path) -> list[Path]:
    """What an archive keeps of the history: every version's record and evaluation, the passes, the tags, and the
    weights of tagged versions (the current ones are in the run folders)."""
    if not history_dir.is_dir():
        return []
    tagged = {(run_id, version) for tag in load_tags(history_dir).values() for run_id, version in tag["runs"].items()}
    files = sorted(history_dir.glob("passes/*.json")) + sorted(history_dir.glob("tags/*.json"))
    for path in sorted(history_dir.glob("runs/*/*/*")):
        if path.name != WEIGHTS or (path.parent.parent.name, path.parent.name) in tagged:
            files.append(path)
    return files
