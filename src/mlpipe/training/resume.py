"""Resumable state: what a checkpoint holds, and when an earlier one may be continued.

``resume.pt`` (under ``checkpoint_root/<run id>/``) holds everything needed to continue a run at the
step where it stopped. It is continued only if the run it describes is the same run: same
hyperparameters, data, model and training code (the lab's own model files included), number of processes
and precision. The state of a finished run is kept too: the same run asked for again (a job that Snakemake resubmitted
after it lost track of the one that trained it) writes its outputs from it instead of training again. A
file that cannot be read as resumable state (garbage, cut short, something else saved under its name) is
moved aside, kept for inspection, and the run starts afresh: every later attempt would fail on it the same way.
"""

from __future__ import annotations

import datetime
import logging
import pickle
from dataclasses import asdict
from pathlib import Path

import torch

from mlpipe.hparams import without_budget
from mlpipe.training.checkpoint import code_fingerprint, load_checkpoint, save_checkpoint
from mlpipe.training.progress import Progress
from mlpipe.user_sources import source_checksum

log = logging.getLogger(__name__)

CODE_PACKAGES = ("mlpipe.models", "mlpipe.training")  # a checkpoint resumes only under the same code
STATE_KEYS = {"fingerprint", "progress", "epoch_sums", "engine", "rng"}


def run_fingerprint(
    run_id: str, hparams: dict, meta: dict, world_size: int, precision: str, budget_may_grow: bool = False
) -> dict:
    """What must be unchanged for a checkpoint to be continued; with ``budget_may_grow`` (a halving study's rungs)
    not ``epochs``: a run whose budget grew continues, its schedule stretched to the new budget from there on."""
    return {
        "run_id": run_id,
        "hparams": without_budget(hparams) if budget_may_grow else hparams,
        "data": meta,
        "code": code_fingerprint(*CODE_PACKAGES),
        "model_code": source_checksum(hparams["model"]),  # a lab's model file and the project files it imports
        "world_size": world_size,
        "precision": precision,  # e.g. a bf16 state resumed on a V100 (fp16 + scaler) would not load
    }


def load_resumable(resume_path: Path, fingerprint: dict, set_aside: bool = True) -> dict | None:
    """The state saved at ``resume_path`` if it continues this run; None to start fresh.

    An unreadable file is moved aside by the process that owns the state folder (``set_aside``: rank 0).
    """
    try:
        state = load_checkpoint(resume_path)
    except FileNotFoundError:  # none yet, or rank 0 has just moved an unreadable one aside
        return None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:  # torch's words for a damaged file
        _unreadable(resume_path, str(error).split(". ")[0].strip(), set_aside)
        return None
    if not isinstance(state, dict) or not state.keys() >= STATE_KEYS:
        _unreadable(resume_path, "it holds no resumable state", set_aside)
        return None
    changed = [key for key in fingerprint if state["fingerprint"].get(key) != fingerprint[key]]
    if changed:
        log.warning("not resuming from %s: %s changed since it was saved", resume_path, ", ".join(changed))
        return None
    return state


def _unreadable(resume_path: Path, reason: str, set_aside: bool) -> None:
    """Move an unreadable state file aside under a dated name, and say so (the other ranks just start afresh)."""
    if not set_aside:
        return
    kept = resume_path.with_name(
        f"{resume_path.stem}.unreadable-{datetime.datetime.now():%Y%m%dT%H%M%S}{resume_path.suffix}"
    )
    resume_path.replace(kept)
    log.warning("%s cannot be read as resumable state (%s); moved to %s, starting afresh", resume_path, reason, kept)


def save_resumable(
    resume_path: Path,
    fingerprint: dict,
    progress: Progress,
    engine_state: dict,
    device: torch.device,
    epoch_sums: torch.Tensor | None = None,
) -> None:
    """Replace ``resume_path`` atomically; ``epoch_sums`` are the metric sums of an epoch stopped part way."""
    save_checkpoint(
        resume_path,
        {
            "fingerprint": fingerprint,
            "progress": asdict(progress),
            "epoch_sums": epoch_sums,
            "engine": engine_state,
            "rng": rng_state(device),
        },
    )


def rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
