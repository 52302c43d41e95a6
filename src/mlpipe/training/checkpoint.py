"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is never half written (temp file + rename), so a job killed while saving
leaves the previous checkpoint intact. Loading uses ``weights_only=True``: a checkpoint is
data (tensors, numbers, strings), never code to execute.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from mlpipe.io import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def code_fingerprint(*packages: str) -> str:
    """sha256 over the source files of the given packages: a checkpoint resumes only under the same code."""
    import importlib

    digest = hashlib.sha256()
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for source in sorted(root.rglob("*.py")):
            digest.update(source.relative_to(root).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()
