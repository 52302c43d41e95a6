"""Every model the factory offers builds for the dataset's samples and classes, and learns; the table of built-in
models is the one place that names them."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch

from conftest import REPO
from mlpipe.models.factory import (
    ANY_SHAPE,
    BUILTIN_MODELS,
    BuiltinModel,
    ModelError,
    build_model,
    check_model_name,
    model_samples,
)

TORCHVISION_MODELS = ["torchvision.resnet18", "torchvision.mobilenet_v3_small"]
# Sample shapes to build each model for, by number of dimensions: images (C, H, W), signals (C, T), vectors (F,).
EXAMPLE_SHAPES = [(1, 8, 8), (3, 32, 32), (6, 128), (20,)]


def shapes_taken(name: str) -> list[tuple[int, ...]]:
    return [shape for shape in EXAMPLE_SHAPES if model_samples(name).take(shape)]


def assert_learns_a_step(model: torch.nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    samples, labels = torch.randn(4, *shape), torch.arange(4) % num_classes
    logits = model(samples)
    assert logits.shape == (4, num_classes)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)


@pytest.mark.parametrize("name", [*BUILTIN_MODELS, *TORCHVISION_MODELS])
def test_each_model_maps_the_samples_it_takes_to_class_logits_and_takes_a_step(name):
    assert shapes_taken(name), f"{name} takes none of {EXAMPLE_SHAPES}"
    for shape in shapes_taken(name):
        torch.manual_seed(0)
        # As training builds it: channels, classes and the sample's shape from the dataset.
        model = build_model(name, in_channels=shape[0], num_classes=7, input_shape=shape)
        assert_learns_a_step(model, shape, 7)


@pytest.mark.parametrize("name", [*BUILTIN_MODELS, *TORCHVISION_MODELS])
def test_each_model_refuses_samples_it_does_not_take_naming_what_it_takes(name):
    for shape in set(EXAMPLE_SHAPES) - set(shapes_taken(name)):
        with pytest.raises(ModelError) as error:
            build_model(name, in_channels=shape[0], num_classes=3, input_shape=shape)
        assert str(error.value).startswith(
            f"train.model: {name} takes {model_samples(name).description}, but this dataset's samples have shape "
            f"{shape}; name a model class of your own: "
        )


def test_small_cnn_fits_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model("small_cnn", in_channels=1, num_classes=3, input_shape=(1, 8, 8))
    images, labels = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    assert (model(images).argmax(1) == labels).all()


MLP = """
from torch import nn


class MLP(nn.Module):
    def __init__(self, num_classes, input_shape, hidden=32):
        super().__init__()
        inputs = 1
        for size in input_shape:
            inputs *= size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)
"""


def test_a_built_in_model_is_one_entry_of_the_table_which_says_what_samples_it_takes(lab_project, monkeypatch):
    # What a contributor adding an `mlp` does: its module, and one entry saying it takes samples of any shape.
    (lab_project / "mlp_module.py").write_text(textwrap.dedent(MLP))
    monkeypatch.setitem(BUILTIN_MODELS, "mlp", BuiltinModel("mlp_module:MLP", ANY_SHAPE))
    check_model_name("mlp")
    for shape in EXAMPLE_SHAPES:
        assert_learns_a_step(build_model("mlp", shape[0], 5, input_shape=shape), shape, 5)
    with pytest.raises(ValueError, match=r"^unknown model 'resnet9000'; allowed: [^;]*, mlp, torchvision.<name>, "):
        check_model_name("resnet9000")


def test_unknown_model_names_are_refused_naming_every_built_in_one():
    allowed = ", ".join([*BUILTIN_MODELS, "torchvision.<name>"])
    with pytest.raises(ValueError) as error:
        check_model_name("resnet9000")
    assert str(error.value).startswith(f"unknown model 'resnet9000'; allowed: {allowed}, path/to/file.py:ClassName")
    with pytest.raises(ValueError, match=r"^unknown torchvision classification model 'torchvision.not_a_model'"):
        check_model_name("torchvision.not_a_model")


def spaced(text: str) -> str:
    """Text with line breaks, YAML comment marks and indentation folded into single spaces."""
    return re.sub(r"\s*\n\s*(#\s*)?", " ", text)


# Every place that lists the built-in models, as (file, pattern whose group is the list, the list's names).
NAMES_IN_BACKTICKS = re.compile(r"`([a-z0-9_]+)`")
NAMES_IN_COMMAS = re.compile(r"([a-z0-9_]+)(?:, |$)")
DOCUMENTED_LISTS = [
    ("README.md", r"allowed: (.*?), torchvision\.<name>", NAMES_IN_COMMAS),
    ("README.md", r"model by name \((.*?), or `torchvision\.<name>`\)", NAMES_IN_BACKTICKS),
    ("README.md", r"\*\*Models\.\*\* (.*?), any torchvision classifier as", NAMES_IN_BACKTICKS),
    ("config/config.yaml", r" Model: (.*?), torchvision\.<name>", NAMES_IN_COMMAS),
    ("workflow/schemas/config.schema.yaml", r"A built-in model \((.*?)\)", NAMES_IN_COMMAS),
]


@pytest.mark.parametrize(
    "file, pattern, names", DOCUMENTED_LISTS, ids=[f"{f}:{p[:20]}" for f, p, _ in DOCUMENTED_LISTS]
)
def test_every_documented_list_of_built_in_models_names_those_of_the_table(file, pattern, names):
    found = re.findall(pattern, spaced((REPO / file).read_text()))
    assert found, f"{file}: no list of the built-in models matching {pattern!r}"
    for listed in found:
        assert names.findall(listed) == list(BUILTIN_MODELS), f"{file}: {listed!r}"
