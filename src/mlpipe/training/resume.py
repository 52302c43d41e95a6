"""Resumable state: what a checkpoint holds, and when an earlier one may be continued.

``resume.pt`` (under ``checkpoint_root/<run id>/``) holds everything needed to continue a run at the
step where it stopped. It is continued only if the run it describes is the same run: same
hyperparameters, data, model and training code (the lab's own model files included), number of processes
and precision.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from mlpipe.training.checkpoint import code_fingerprint, load_checkpoint, save_checkpoint
from mlpipe.training.progress import Progress
from mlpipe.user_sources import source_checksum

log = logging.getLogger(__name__)

CODE_PACKAGES = ("mlpipe.models", "mlpipe.training")  # a checkpoint resumes only under the same code


def run_fingerprint(run_id: str, hparams: dict, meta: dict, world_size: int, precision: str) -> dict:
    """What must be unchanged for a checkpoint to be continued."""
    return {
        "run_id": run_id,
        "hparams": hparams,
        "data": meta,
        "code": code_fingerprint(*CODE_PACKAGES),
        "model_code": source_checksum(hparams["model"]),  # a lab's model file and the project files it imports
        "world_size": world_size,
        "precision": precision,  # e.g. a bf16 state resumed on a V100 (fp16 + scaler) would not load
    }


def load_resumable(resume_path: Path, fingerprint: dict) -> dict | None:
    """The state saved at ``resume_path`` if it continues this run; None to start fresh."""
    if not resume_path.exists():
        return None
    state = load_checkpoint(resume_path)
    if state["progress"]["finished"]:
        log.info("%s holds a finished run: training again from scratch", resume_path)
        return None
    changed = [key for key in fingerprint if state["fingerprint"].get(key) != fingerprint[key]]
    if changed:
        log.warning("not resuming from %s: %s changed since it was saved", resume_path, ", ".join(changed))
        return None
    return state


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
