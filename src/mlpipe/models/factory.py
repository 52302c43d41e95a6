"""Model factory: names to constructors, checked without importing torch.

Config checks run every time Snakemake parses the workflow, so naming a model must stay
cheap: built-in models are listed here as import paths, and torchvision is imported only
when the config names a ``torchvision.<name>`` model.
"""

from __future__ import annotations

import importlib

BUILTIN_MODELS = {
    "small_cnn": "mlpipe.models.small_cnn:SmallCNN",
    "resnet18_cifar": "mlpipe.models.resnet_cifar:ResNet18",
    "airbench": "mlpipe.models.airbench:AirbenchNet",
}
TORCHVISION_PREFIX = "torchvision."


def check_model_name(name: str) -> None:
    """Raise ValueError naming the allowed models if ``name`` is not one."""
    if name in BUILTIN_MODELS:
        return
    if name.startswith(TORCHVISION_PREFIX):
        if name.removeprefix(TORCHVISION_PREFIX) in _torchvision_classifiers():
            return
        raise ValueError(f"unknown torchvision classification model {name!r}; see torchvision.models.list_models()")
    allowed = ", ".join([*BUILTIN_MODELS, f"{TORCHVISION_PREFIX}<name>"])
    raise ValueError(f"unknown model {name!r}; allowed: {allowed}")


def build_model(name: str, in_channels: int, num_classes: int):
    """Return a fresh ``torch.nn.Module`` for ``name`` with the dataset's channels and classes."""
    check_model_name(name)
    if name.startswith(TORCHVISION_PREFIX):
        from mlpipe.models.torchvision_models import build_torchvision_model

        return build_torchvision_model(name.removeprefix(TORCHVISION_PREFIX), in_channels, num_classes)
    module_name, class_name = BUILTIN_MODELS[name].split(":")
    model_class = getattr(importlib.import_module(module_name), class_name)
    return model_class(in_channels=in_channels, num_classes=num_classes)


def _torchvision_classifiers() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)
