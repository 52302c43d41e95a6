"""Every model the registry offers builds for the dataset's channels and classes, and learns."""

from __future__ import annotations

import copy

import pytest
import torch

from mlpipe.models.registry import BUILTIN_MODELS, build_model, check_model_name
from mlpipe.training.ema import WeightAverage


@pytest.mark.parametrize("name", [*BUILTIN_MODELS, "torchvision.resnet18", "torchvision.mobilenet_v3_small"])
@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32)])
def test_model_maps_images_to_class_logits_and_takes_a_step(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=7)
    images, labels = torch.randn(4, channels, size, size), torch.arange(4) % 7
    logits = model(images)
    assert logits.shape == (4, 7)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)


def test_small_cnn_fits_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model("small_cnn", in_channels=1, num_classes=3)
    images, labels = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.eval()
    assert (model(images).argmax(1) == labels).all()


@pytest.mark.parametrize(
    "name, message",
    [
        ("resnet9000", "unknown model 'resnet9000'; allowed: small_cnn, resnet18_cifar, airbench, torchvision.<name>"),
        ("torchvision.not_a_model", "unknown torchvision classification model 'torchvision.not_a_model'"),
    ],
)
def test_unknown_model_names_are_refused(name, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("<", ".").replace(">", ".")):
        check_model_name(name)


def test_compiled_engine_trains_and_saves_plain_state_dict_keys():
    from mlpipe.training.device import choose_precision
    from mlpipe.training.engine import Engine

    torch.manual_seed(0)
    device = torch.device("cpu")
    hparams = {
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "epochs": 1,
        "schedule": "constant",
        "warmup_epochs": 0,
        "ema_decay": 0.9,
        "compile": True,
    }
    engine = Engine.build(build_model("small_cnn", 1, 3), hparams, device, choose_precision(device), steps_per_epoch=30)
    images, labels = torch.randn(12, 1, 8, 8), torch.arange(12) % 3
    losses = [float(engine.step(images, labels)[0]) for _ in range(30)]
    assert losses[-1] < losses[0] / 2
    keys = engine.state_dict()["model"].keys()
    assert keys == build_model("small_cnn", 1, 3).state_dict().keys()  # no "_orig_mod." from torch.compile
    assert engine.eval_model is engine.ema.module


def test_weight_average_moves_parameters_and_buffers_towards_the_model_and_copies_counters():
    model = build_model("resnet18_cifar", 3, 10)
    average = WeightAverage(model, decay=0.75)
    start = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # moves batch-norm statistics and counters
    average.update()
    for name, value in average.state_dict().items():
        current = model.state_dict()[name]
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * start[name] + 0.25 * current), name
        else:
            assert torch.equal(value, current), name
