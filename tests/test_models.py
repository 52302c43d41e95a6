"""Every model the factory offers builds for the dataset's channels and classes, and learns."""

from __future__ import annotations

import pytest
import torch

from mlpipe.models.factory import BUILTIN_MODELS, build_model, check_model_name


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
