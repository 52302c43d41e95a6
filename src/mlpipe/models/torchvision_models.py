"""Any torchvision classification model by name, adapted to the dataset's channels and classes."""

from collections.abc import Mapping

import torchvision
from torch import nn


class RepeatChannels(nn.Module):
    """Feed grayscale images to a model built for RGB by repeating the channel."""

    def __init__(self, model: nn.Module, repeats: int):
        super().__init__()
        self.model = model
        self.repeats = repeats

    def forward(self, x):
        return self.model(x.expand(-1, self.repeats, -1, -1))


def build_torchvision_model(name: str, in_channels: int, num_classes: int, model_args: Mapping) -> nn.Module:
    # weights=None: nothing is downloaded; compute nodes often have no internet.
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **model_args)
    if in_channels == 1:
        return RepeatChannels(model, 3)
    if in_channels != 3:
        raise ValueError(f"torchvision.{name} expects 3 input channels, the dataset has {in_channels}")
    return model
