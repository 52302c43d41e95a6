"""Does the model take the data? One forward pass of a tiny batch of the real samples before the first epoch.

A model that cannot take the dataset's samples (a torchvision ViT built for 224x224 given 8x8 digits, an image
model given signals) or that does not give one score per class would otherwise fail with a traceback from deep
inside the model once training has started, or train on outputs that mean nothing. This check turns both into
one line naming the model, the sample shape and, for torchvision models, the smallest input their weights list.
"""

from __future__ import annotations

import torch

from mlpipe.device import Precision
from mlpipe.models.factory import TORCHVISION_PREFIX


class ModelMismatchError(ValueError):
    """A model that cannot take the dataset's images, or that gives other than one score per class."""


def check_model_fits(
    model: torch.nn.Module, name: str, images: torch.Tensor, num_classes: int, precision: Precision | None = None
) -> None:
    """Run ``model`` (named ``name`` in the config) on ``images``, a few normalised images on its device, in eval
    mode without gradients (so no weight or batch-norm statistic moves); raise ModelMismatchError if it fails or
    its output is not ``(N, num_classes)``."""
    was_training = model.training
    model.eval()
    dtype = precision.autocast_dtype if precision else None
    try:
        with torch.no_grad(), torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            output = model(images)
    except Exception as error:  # whatever the model raises: its own first line goes into ours
        shape = tuple(images.shape[1:])
        first_line = next(iter(str(error).strip().splitlines()), "")
        reason = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
        raise ModelMismatchError(
            f"train.model: {name} cannot take this dataset's samples of shape {shape} ({reason})"
            f"{_size_hint(name, shape[1:])}"
        ) from None
    finally:
        model.train(was_training)
    wanted = (len(images), num_classes)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != wanted:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelMismatchError(
            f"train.model: {name} gives outputs of shape {got} for {len(images)} samples; "
            f"training needs {wanted}: one score per class"
        )


def _size_hint(name: str, height_width: tuple[int, ...]) -> str:
    """For a torchvision model whose weights list a smallest input larger than the images: that size."""
    if not name.startswith(TORCHVISION_PREFIX):
        return ""
    from torchvision.models import get_model_weights

    try:
        sizes = [weights.meta["min_size"] for weights in get_model_weights(name.removeprefix(TORCHVISION_PREFIX))]
    except (ValueError, KeyError):
        return ""
    height, width = min(sizes, key=lambda size: size[0] * size[1], default=(0, 0))
    if height_width[0] >= height and height_width[1] >= width:
        return ""
    return (
        f"; torchvision lists {height}x{width} as its smallest input: choose another model, "
        f"or images at least that large (dataset.image_folder.size)"
    )
