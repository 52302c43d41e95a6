"""Model factory: names and references to constructors, checked without importing torch.

Config checks run every time Snakemake parses the workflow, so naming a model must stay
cheap: built-in models are listed here as import paths, torchvision is imported only
when the config names a ``torchvision.<name>`` model, and a lab's own class
(``path/to/file.py:ClassName``, ``package.module:ClassName``) is read with ``ast``, not imported.

Every model is built as ``Class(num_classes=K, **train.model_args)``, plus ``in_channels=C`` (a sample's first
dimension) and ``input_shape=(C, ...)`` (one sample's shape) when its constructor has a parameter of that name
(``in_channels`` also when it takes ``**kwargs``).

``BUILTIN_MODELS`` is the one table of built-in models: each name, its class and the samples it takes. The lists of
built-in models in the README, config/config.yaml and the schema are checked against it (tests/test_models.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    takes_any_keyword,
)


@dataclass(frozen=True)
class Samples:
    """The samples a model takes: those with one of ``dimensions`` (None: any), named ``description``."""

    description: str
    dimensions: tuple[int, ...] | None = None

    def take(self, shape: tuple[int, ...] | list[int]) -> bool:
        return self.dimensions is None or len(shape) in self.dimensions


IMAGES = Samples("images (C, H, W)", (3,))
ANY_SHAPE = Samples("samples of any shape")


@dataclass(frozen=True)
class BuiltinModel:
    reference: str  # module:Class, imported only when the model is built
    samples: Samples


BUILTIN_MODELS = {
    "small_cnn": BuiltinModel("mlpipe.models.small_cnn:SmallCNN", IMAGES),
    "resnet18_cifar": BuiltinModel("mlpipe.models.resnet_cifar:ResNet18", IMAGES),
    "airbench": BuiltinModel("mlpipe.models.airbench:AirbenchNet", IMAGES),
}
TORCHVISION_PREFIX = "torchvision."
TORCHVISION_SAMPLES = IMAGES
CONTRACT = ("num_classes",)  # what every model is built with
CHANNELS_ARGUMENT = "in_channels"  # passed to constructors that take it
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
                f"with num_classes= (the number of classes), so add it to its parameters"
            )


def check_model_args(name: str, model_args: Mapping) -> None:
    """Raise ValueError when ``model_args`` would not fit the constructor of model ``name`` (as far as its source
    says); ``name`` has passed :func:`check_model_name`."""
    reserved = [key for key in (*CONTRACT, CHANNELS_ARGUMENT, SHAPE_ARGUMENT) if key in model_args]
    if reserved:
        raise UserCodeError(f"{reserved[0]} is set by mlpipe from the data; remove it", reserved[0])
    if name.startswith(TORCHVISION_PREFIX):
        return  # torchvision's builders take many keywords; a wrong one fails when the train job builds the model
    reference = parse_reference(builtin_reference(name))
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
    samples = model_samples(name)
    if samples is not None and input_shape and not samples.take(input_shape):
        raise ModelError(
            f"train.model: {name} takes {samples.description}, but this dataset's samples have shape "
            f"{tuple(input_shape)}; name a model class of your own: {FORMS}"
        )
    if name.startswith(TORCHVISION_PREFIX):
        from mlpipe.models.torchvision_models import build_torchvision_model

        return build_torchvision_model(name.removeprefix(TORCHVISION_PREFIX), in_channels, num_classes, model_args)
    reference = parse_reference(builtin_reference(name))
    model_class = load_class(reference, "train.model")
    takes_channels = accepts(model_class, CHANNELS_ARGUMENT) or takes_any_keyword(model_class)
    kwargs = {**({CHANNELS_ARGUMENT: in_channels} if takes_channels else {}), "num_classes": num_classes, **model_args}
    if input_shape is not None and accepts(model_class, SHAPE_ARGUMENT):
        kwargs[SHAPE_ARGUMENT] = tuple(input_shape)
    model = construct(model_class, kwargs, "train.model")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"train.model: {reference} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def builtin_reference(name: str) -> str:
    """The class reference of model ``name``: a built-in's from the table, a lab's own as given."""
    return BUILTIN_MODELS[name].reference if name in BUILTIN_MODELS else name


def model_samples(name: str) -> Samples | None:
    """The samples a built-in or torchvision model takes; None for a lab's own class (its forward pass decides)."""
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name].samples
    return TORCHVISION_SAMPLES if name.startswith(TORCHVISION_PREFIX) else None


def _given(parameters: Parameters | None, model_args: Mapping) -> list[str]:
    """The keywords a constructor with ``parameters`` gets."""
    if parameters is None:  # the source does not say: nothing to check against
        return [*CONTRACT, *model_args]
    channels = [CHANNELS_ARGUMENT] if CHANNELS_ARGUMENT in parameters.names or parameters.takes_any else []
    shape = [SHAPE_ARGUMENT] if SHAPE_ARGUMENT in parameters.names else []
    return [*channels, *CONTRACT, *model_args, *shape]


def _torchvision_classifiers() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)
