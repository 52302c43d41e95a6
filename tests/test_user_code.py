"""A lab's own classes by reference: checked without importing them, checksummed with the project files they
import, imported with their project's folders on the path, and built as the model contract says."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO
from mlpipe.models.factory import ModelError, build_model, check_model_args, check_model_name
from mlpipe.user_code import Reference, UserCodeError, check_reference, load_class, parse_reference
from mlpipe.user_sources import source_checksum, source_files


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


GUIDE_MODEL = """
    from torch import nn

    from src.models.layers import hidden_layer


    class MyModel(nn.Module):
        def __init__(self, in_channels, num_classes, width=16, *, input_shape=(1,)):
            super().__init__()
            self.input_shape = input_shape
            self.net = nn.Sequential(nn.Flatten(), hidden_layer(in_channels * input_shape[-1], width),
                                     nn.Linear(width, num_classes))

        def forward(self, x):
            return self.net(x)
"""
GUIDE_LAYERS = """
    from torch import nn

    from .activations import activation


    def hidden_layer(inputs, width):
        return nn.Sequential(nn.Linear(inputs, width), activation())
"""
GUIDE_ACTIVATIONS = """
    from torch import nn


    def activation():
        return nn.ReLU()
"""


def guide_project(root: Path) -> Path:
    """The lab guide's layout: src/models/model.py importing its siblings (absolutely and relatively)."""
    write(root / "src" / "models" / "layers.py", GUIDE_LAYERS)
    write(root / "src" / "models" / "activations.py", GUIDE_ACTIVATIONS)
    write(root / "src" / "data" / "dataset.py", "SEPARATE = True\n")
    return write(root / "src" / "models" / "model.py", GUIDE_MODEL)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("src/models/model.py:MyModel", Reference("src/models/model.py", "MyModel")),
        ("lab_models.nets:ResNet", Reference("lab_models.nets", "ResNet")),
        ("small_cnn", None),
        ("torchvision.resnet18", None),
        ("my_models.py", None),
        ("src/model.py:", None),
        ("src/model.py:2Fast", None),
    ],
)
def test_a_reference_is_a_file_or_module_and_a_class_name(text, expected):
    assert parse_reference(text) == expected


def test_a_file_is_checked_without_being_imported(lab_project):
    write(
        lab_project / "model.py",
        """
        raise RuntimeError("imported at parse time")


        class Net:
            def __init__(self, in_channels, num_classes, hidden, depth=2, *, scale=1.0, **extra):
                pass
        """,
    )
    parameters = check_reference(Reference("model.py", "Net"))
    assert parameters.names == ("in_channels", "num_classes", "hidden", "depth", "scale")
    assert parameters.required == ("in_channels", "num_classes", "hidden") and parameters.takes_any


@pytest.mark.parametrize(
    "source, reference, message",
    [
        (None, "nowhere.py:Net", r"^no such file nowhere.py \(relative to the workflow folder "),
        ("class Other:\n    pass\n", "model.py:Net", r"^model.py defines no Net$"),
        ("class Net(\n    pass\n", "model.py:Net", r"^model.py line 1: '\(' was never closed$"),
        (None, "no_such_lab_package.models:Net", r"^no module no_such_lab_package.models \(not installed, and no "),
    ],
)
def test_a_reference_that_cannot_be_used_is_one_line(lab_project, source, reference, message):
    if source is not None:
        write(lab_project / "model.py", source)
    with pytest.raises(UserCodeError, match=message):
        check_reference(parse_reference(reference))


def test_a_class_bound_by_import_or_under_try_counts_as_defined_with_its_signature_unknown(lab_project):
    write(
        lab_project / "model.py", "try:\n    from torch.nn import Linear as Net\nexcept ImportError:\n    Net = None\n"
    )
    assert check_reference(Reference("model.py", "Net")) is None


def test_a_module_reference_is_found_without_importing_its_packages():
    # torchvision.datasets imports torch when imported; checking it must not (a login node parses on every command).
    code = (
        "import sys; from mlpipe.user_code import check_reference, parse_reference; "
        "check_reference(parse_reference('torchvision.datasets:CIFAR10')); "
        "check_reference(parse_reference('mlpipe.models.small_cnn:SmallCNN')); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(REPO / "src")}
    )
    assert result.stdout.strip() == "False"


def test_the_checksum_covers_the_file_and_the_project_files_it_imports(lab_project):
    model = guide_project(lab_project)
    reference = "src/models/model.py:MyModel"
    assert source_files(parse_reference(reference)) == sorted(
        (lab_project / "src" / "models" / name).resolve() for name in ("model.py", "layers.py", "activations.py")
    )
    before = source_checksum(reference)
    (lab_project / "src" / "data" / "dataset.py").write_text("SEPARATE = False\n")  # not imported by the model
    assert source_checksum(reference) == before
    activations = lab_project / "src" / "models" / "activations.py"
    activations.write_text(activations.read_text() + "# an edit two imports away\n")
    edited = source_checksum(reference)
    assert edited != before
    model.touch()
    assert source_checksum(reference) == edited  # content, not file times
    assert source_checksum("small_cnn") == "" and source_checksum("mlpipe.models.small_cnn:SmallCNN") == ""


def test_a_copied_project_keeps_its_checksum(lab_project, tmp_path_factory, monkeypatch):
    guide_project(lab_project)
    reference = "src/models/model.py:MyModel"
    here = source_checksum(reference)
    elsewhere = tmp_path_factory.mktemp("copy")
    guide_project(elsewhere)
    monkeypatch.chdir(elsewhere)
    assert source_checksum(reference) == here


def test_a_guide_style_model_imports_its_siblings_and_is_built_by_the_contract(lab_project):
    guide_project(lab_project)
    model = build_model(
        "src/models/model.py:MyModel", 6, 4, input_shape=(6, 10), model_args={"width": 8}
    )  # in_channels, num_classes, input_shape (its constructor names it) and model_args
    assert model.input_shape == (6, 10)
    assert model(torch.randn(3, 6, 10)).shape == (3, 4)
    assert type(model).__module__ == "src.models.model"


def test_a_module_in_the_workflow_folder_is_a_reference_too(lab_project):
    write(lab_project / "lab" / "__init__.py", "")
    write(
        lab_project / "lab" / "nets.py",
        "from torch import nn\n\n\ndef Net(in_channels, num_classes):\n"
        "    return nn.Linear(in_channels, num_classes)\n",
    )
    check_model_name("lab.nets:Net")
    assert isinstance(build_model("lab.nets:Net", 5, 2, input_shape=(5,)), torch.nn.Linear)


@pytest.mark.parametrize(
    "source, model_args, message",
    [
        (
            "class Net:\n    def __init__(self, in_channels, num_classes, width=8):\n        pass\n",
            {"widht": 16},
            r"^train.model: Net\(in_channels=3, num_classes=2, widht=16\) is refused: got an unexpected keyword",
        ),
        (
            "class Net:\n    def __init__(self, in_channels, num_classes):\n        pass\n",
            {},
            r"^train.model: model.py:Net built a Net, not a torch.nn.Module$",
        ),
    ],
)
def test_building_a_model_the_contract_does_not_fit_is_one_line(lab_project, source, model_args, message):
    write(lab_project / "model.py", source)
    with pytest.raises(ValueError, match=message):
        build_model("model.py:Net", 3, 2, input_shape=(3, 8, 8), model_args=model_args)


@pytest.mark.parametrize(
    "source, check, message",
    [
        (
            "class Net:\n    def __init__(self, in_channels):\n        pass\n",
            lambda: check_model_name("model.py:Net"),
            r"^Net.__init__ has no parameter num_classes; mlpipe builds every model with num_classes= ",
        ),
        (
            "class Net:\n    def __init__(self, in_channels, num_classes, width=8):\n        pass\n",
            lambda: check_model_args("model.py:Net", {"widht": 16}),
            r"^Net takes no argument 'widht'; its parameters: in_channels, num_classes, width$",
        ),
        (
            "class Net:\n    def __init__(self, in_channels, num_classes, hidden):\n        pass\n",
            lambda: check_model_args("model.py:Net", {}),
            r"^Net needs 'hidden'; set train.model_args.hidden in the config$",
        ),
        (
            "class Net:\n    def __init__(self, in_channels, num_classes):\n        pass\n",
            lambda: check_model_args("model.py:Net", {"num_classes": 3}),
            r"^num_classes is set by mlpipe from the data; remove it$",
        ),
    ],
)
def test_the_model_contract_is_checked_from_the_source(lab_project, source, check, message):
    write(lab_project / "model.py", source)
    with pytest.raises(ValueError, match=message):
        check()


# The lab guide's model, verbatim: built for CIFAR's RGB images, it takes the number of classes and nothing else.
GUIDE_MODEL_VERBATIM = """
    import torch
    import torch.nn as nn


    class MyModel(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(self.pool(x), 1))
"""


def test_the_guides_model_without_in_channels_is_built_with_the_classes_only(lab_project):
    write(lab_project / "src" / "models" / "model.py", GUIDE_MODEL_VERBATIM)
    check_model_name("src/models/model.py:MyModel")
    check_model_args("src/models/model.py:MyModel", {})
    model = build_model("src/models/model.py:MyModel", 3, 4, input_shape=(3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"^in_channels is set by mlpipe from the data; remove it$"):
        check_model_args("src/models/model.py:MyModel", {"in_channels": 3})


def test_the_guides_rgb_model_on_grayscale_data_stops_at_the_one_batch_check_with_one_line(lab_project):
    from mlpipe.training.model_check import ModelMismatchError, check_model_fits

    write(lab_project / "src" / "models" / "model.py", GUIDE_MODEL_VERBATIM)
    name = "src/models/model.py:MyModel"
    model = build_model(name, 1, 10, input_shape=(1, 8, 8))  # digits: one channel, which it does not ask for
    with pytest.raises(ModelMismatchError) as error:
        check_model_fits(model, name, torch.randn(2, 1, 8, 8), 10)
    assert str(error.value) == (
        f"train.model: {name} cannot take this dataset's samples of shape (1, 8, 8) (RuntimeError: Given groups=1, "
        "weight of size [32, 3, 3, 3], expected input[2, 1, 8, 8] to have 3 channels, but got 1 channels instead)"
    )
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"`error: ModelMismatchError: {error.value}`" in readme  # as the README quotes it


def test_in_channels_goes_to_a_constructor_that_names_it_or_takes_any_keyword(lab_project):
    write(
        lab_project / "model.py",
        """
        from torch import nn


        class Named(nn.Linear):
            def __init__(self, in_channels, num_classes):
                super().__init__(in_channels, num_classes)


        class Forwarding(nn.Linear):
            def __init__(self, num_classes, **kwargs):
                super().__init__(kwargs["in_channels"], num_classes)
        """,
    )
    for name in ("model.py:Named", "model.py:Forwarding"):
        check_model_name(name)
        assert build_model(name, 5, 2, input_shape=(5,)).in_features == 5


def test_builtin_model_arguments_are_checked_and_passed():
    check_model_args("small_cnn", {"width": 8})
    with pytest.raises(ValueError, match=r"^SmallCNN takes no argument 'depth'; its parameters: in_channels,"):
        check_model_args("small_cnn", {"depth": 3})
    model = build_model("small_cnn", 1, 3, input_shape=(1, 8, 8), model_args={"width": 8})
    assert model.head[1].in_features == 16


@pytest.mark.parametrize("name", ["small_cnn", "torchvision.resnet18"])
def test_an_image_model_refuses_samples_that_are_not_images(name):
    with pytest.raises(ModelError, match=r"^train.model: .* takes images \(C, H, W\), but this dataset's samples"):
        build_model(name, 6, 3, input_shape=(6, 128))


def test_a_class_named_by_a_loaded_file_that_lacks_it_is_one_line(lab_project):
    write(lab_project / "model.py", "import os\n\nNet = getattr(os, 'nothing', None)\ndel Net\n")
    with pytest.raises(UserCodeError, match=r"^train.model: model.py defines no Net$"):
        load_class(Reference("model.py", "Net"), "train.model")
