"""Model factory: names and references to constructors, checked without importing torch.

Config checks run every time Snakemake parses the workflow, so naming a model must stay
cheap: built-in models are listed here as import paths, torchvision is imported only
when the config names a ``torchvision.<name>`` model, and a lab's own class
(``path/to/file.py:ClassName``, ``package.module:ClassName``) is read with ``ast``, not imported.

Every model is built as ``Class(in_channels=C, num_classes=K, **train.model_args)``, plus
``input_shape=(C, ...)`` (one sample's shape) when its constructor has a parameter of that name.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlpipe.user_code import (
    FORMS,
    Parameters,
    UserCodeError,
    accepts,
    check_arguments,
    check_reference,
    construct,
    load_class,
    parse_reference,
)

BUILTIN_MODELS = {
    "small_cnn": "mlpipe.models.small_cnn:SmallCNN",
    "resnet18_cifar": "mlpipe.models.resnet_cifar:ResNet18",
    "airbench": "mlpipe.models.airbench:AirbenchNet",
}
TORCHVISION_PREFIX = "torchvision."
CONTRACT = ("in_channels", "num_classes")  # what every model is built with
SHAPE_ARGUMENT = "input_shape"  # passed only to constructors that name it


class ModelError(ValueError):
    """A model that cannot be built for this data; the message names the config key."""


def check_model_name(name: str) -> None:
    """Raise ValueError naming the allowed models if ``name`` is not one; for a lab's own class, also when its
    file does not parse, does not define it, or its constructor does not take ``in_channels`` and ``num_classes``."""
    if name in BUILTIN_MODELS:
        return
    if name.startswith(TORCHVISION_PREFIX):
        if name.removeprefix(TORCHVISION_PREFIX) in _torchvision_classifiers():
            return
        raise ValueError(f"unknown torchvision classification model {name!r}; see torchvision.models.list_models()")
    reference = parse_reference(name)
    if reference is None:
        if name.endswith(".py"):
            raise ValueError(f"{name!r} names a file but no class; write {name}:ClassName")
        allowed = ", ".join([*BUILTIN_MODELS, f"{TORCHVISION_PREFIX}<name>", FORMS])
        raise ValueError(f"unknown model {name!r}; allowed: {allowed}")
    parameters = check_reference(reference)
    if parameters is not None and not parameters.takes_any:
        missing = [argument for argument in CONTRACT if argument not in parameters.names]
        if missing:
            raise ValueError(
                f"{reference.class_name}.__init__ has no parameter {', '.join(missing)}; mlpipe builds every model "
                f"with in_channels= (channels of a sample) and num_classes=, so add them to its parameters"
            )


def check_model_args(name: str, model_args: Mapping) -> None:
    """Raise ValueError when ``model_args`` would not fit the constructor of model ``name`` (as far as its source
    says); ``name`` has passed :func:`check_model_name`."""
    reserved = [key for key in (*CONTRACT, SHAPE_ARGUMENT) if key in model_args]
    if reserved:
        raise UserCodeError(f"{reserved[0]} is set by mlpipe from the data; remove it", reserved[0])
    if name.startswith(TORCHVISION_PREFIX):
        return  # torchvision's builders take many keywords; a wrong one fails when the train job builds the model
    reference = parse_reference(BUILTIN_MODELS.get(name, name))
    parameters = check_reference(reference)
    check_arguments(reference, parameters, _given(parameters, model_args), "train.model_args")


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    *,
    input_shape: tuple[int, ...] | list[int] | None = None,
    model_args: Mapping | None = None,
):
    """Return a fresh ``torch.nn.Module`` for ``name`` with the dataset's channels, classes and sample shape."""
    import torch

    check_model_name(name)
    model_args = dict(model_args or {})
    if (name in BUILTIN_MODELS or name.startswith(TORCHVISION_PREFIX)) and input_shape and len(input_shape) != 3:
        raise ModelError(
            f"train.model: {name} takes images (C, H, W), but this dataset's samples have shape {tuple(input_shape)}; "
            f"name a model class of your own: {FORMS}"
        )
    if name.startswith(TORCHVISION_PREFIX):
        from mlpipe.models.torchvision_models import build_torchvision_model

        return build_torchvision_model(name.removeprefix(TORCHVISION_PREFIX), in_channels, num_classes, model_args)
    reference = parse_reference(BUILTIN_MODELS.get(name, name))
    model_class = load_class(reference, "train.model")
    kwargs = {"in_channels": in_channels, "num_classes": num_classes, **model_args}
    if input_shape is not None and accepts(model_class, SHAPE_ARGUMENT):
        kwargs[SHAPE_ARGUMENT] = tuple(input_shape)
    model = construct(model_class, kwargs, "train.model")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"train.model: {reference} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _given(parameters: Parameters | None, model_args: Mapping) -> list[str]:
    """The keywords a constructor with ``parameters`` gets."""
    shape = [SHAPE_ARGUMENT] if parameters is not None and SHAPE_ARGUMENT in parameters.names else []
    return [*CONTRACT, *model_args, *shape]


def _torchvision_classifiers() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)
