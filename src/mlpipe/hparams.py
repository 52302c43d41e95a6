"""Hyperparameters as the sweep names them: ``lr`` is ``hparams["lr"]``, ``model_args.width`` is
``hparams["model_args"]["width"]`` (one keyword argument of the model's constructor).

The config check, the summary tables and ``best_config.yaml`` all address a swept value this way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MODEL_ARGS = "model_args"
MODEL_ARGS_PREFIX = f"{MODEL_ARGS}."


def hparam(hparams: Mapping, key: str) -> Any:
    """The value of a sweep key in a run's hyperparameters."""
    if key.startswith(MODEL_ARGS_PREFIX):
        return hparams[MODEL_ARGS][key.removeprefix(MODEL_ARGS_PREFIX)]
    return hparams[key]


def with_hparam(hparams: Mapping, key: str, value: Any) -> dict:
    """A copy of ``hparams`` with the sweep key set (``model_args`` copied, never shared between runs)."""
    if key.startswith(MODEL_ARGS_PREFIX):
        return {**hparams, MODEL_ARGS: {**hparams[MODEL_ARGS], key.removeprefix(MODEL_ARGS_PREFIX): value}}
    return {**hparams, key: value}


def without_budget(hparams: Mapping) -> dict:
    """The hyperparameters but ``epochs``: what stays the same while a successive-halving run's budget grows."""
    return {key: value for key, value in hparams.items() if key != "epochs"}


def hparams_digest(hparams: Mapping) -> str:
    """A short digest of a run's hyperparameters: equal exactly when they are."""
    return hashlib.sha256(json.dumps(hparams, sort_keys=True).encode()).hexdigest()[:12]
