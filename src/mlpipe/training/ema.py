"""Exponential moving average of a model's weights, updated on the device without waiting for it."""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` after every step, for parameters and float buffers.

    Integer buffers (batch-norm's step counter) are copied. Unlike ``torch.optim.swa_utils.AveragedModel``
    it keeps no host-side counter, so an update never makes the host wait for the GPU.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        # state_dict() values share storage with the modules: updating them updates the average in place.
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        self._averaged_floats, self._model_floats = _unzip([pair for pair in pairs if pair[0].is_floating_point()])
        self._copied_others, self._model_others = _unzip([pair for pair in pairs if not pair[0].is_floating_point()])

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's current weights."""
        if self._averaged_floats:
            torch._foreach_lerp_(self._averaged_floats, self._model_floats, 1 - self.decay)
        if self._copied_others:
            torch._foreach_copy_(self._copied_others, self._model_others)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


def _unzip(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [first for first, _ in pairs], [second for _, second in pairs]
