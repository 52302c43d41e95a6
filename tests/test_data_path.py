"""The on-device batch path: augmentation, normalisation, per-epoch plans, schedules, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpipe.training.data import Augmentation, Normalizer, TrainBatches, random_crop
from mlpipe.training.device import choose_precision
from mlpipe.training.schedule import lr_factor


def test_random_crop_matches_a_naive_crop_of_the_zero_padded_image():
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [4, 4], [2, 1], [0, 4], [3, 2]])
    cropped = random_crop(images, shifts, padding=2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(cropped[index], padded[index, :, dy : dy + 6, dx : dx + 7])


def test_normalizer_matches_the_textbook_formula():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.2, 0.3]
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, torch.device("cpu"), False)(images), expected, atol=1e-5)


def make_batches(**kwargs) -> TrainBatches:
    images = np.arange(20 * 1 * 4 * 4, dtype=np.uint8).reshape(20, 1, 4, 4)
    labels = np.arange(20) % 5
    defaults = dict(
        batch_size=6,
        device=torch.device("cpu"),
        normalizer=Normalizer([0.0], [1.0], torch.device("cpu"), False),
        augmentation=Augmentation(crop_padding=1, flip=True),
        seed=3,
    )
    return TrainBatches(images, labels, **(defaults | kwargs))


def test_epoch_plan_depends_only_on_seed_and_epoch():
    first, second = make_batches().plan(4), make_batches().plan(4)
    assert torch.equal(first.order, second.order) and torch.equal(first.shifts, second.shifts)
    assert torch.equal(first.flips, second.flips)
    assert not torch.equal(make_batches().plan(5).order, first.order)
    assert sorted(first.order.tolist()) == list(range(20))


def test_batches_drop_the_last_partial_batch_and_cover_distinct_examples():
    batches = make_batches(augmentation=Augmentation())
    assert batches.steps_per_epoch == 3
    plan = batches.plan(0)
    seen = torch.cat([batches.batch(plan, step)[1] for step in range(3)])
    assert len(seen) == 18


def test_ranks_split_each_global_batch_without_overlap():
    whole = make_batches(augmentation=Augmentation())
    ranks = [make_batches(augmentation=Augmentation(), rank=rank, world_size=2) for rank in range(2)]
    plan = whole.plan(1)
    full_images, _ = whole.batch(plan, 1)
    shards = [rank.batch(rank.plan(1), 1)[0] for rank in ranks]
    assert sorted(map(tuple, torch.cat(shards).flatten(1).tolist())) == sorted(
        map(tuple, full_images.flatten(1).tolist())
    )


@pytest.mark.parametrize("world_size", [1, 2])
def test_batches_streamed_from_host_buffers_equal_those_cut_on_the_device(world_size):
    # The path for data too large for the GPU; on the CPU it runs without pinning, same gathers and buffers.
    for rank in range(world_size):
        resident = make_batches(rank=rank, world_size=world_size)
        streamed = make_batches(rank=rank, world_size=world_size, on_device=False)
        for epoch in range(2):
            plans = resident.plan(epoch), streamed.plan(epoch)
            for step in range(resident.steps_per_epoch):
                (images, labels), (streamed_images, streamed_labels) = (
                    resident.batch(plans[0], step),
                    streamed.batch(plans[1], step),
                )
                assert torch.equal(images, streamed_images) and torch.equal(labels, streamed_labels)


@pytest.mark.parametrize("step, expected", [(0, 0.5), (1, 1.0), (2, 0.9), (6, 0.5), (11, 0.0)])
def test_warmup_then_linear_decay(step, expected):
    # 1 warmup step (half the peak), then linear decay from the peak to 0 over the remaining 10 steps.
    assert lr_factor(step, total_steps=11, warmup_steps=1, decay="linear") == pytest.approx(expected)


def test_cosine_schedule_starts_at_the_peak_and_ends_at_zero():
    assert lr_factor(0, 100, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)


def test_precision_on_cpu_is_fp32_unless_asked():
    cpu = torch.device("cpu")
    assert choose_precision(cpu).name == "fp32" and choose_precision(cpu).autocast_dtype is None
    bf16 = choose_precision(cpu, "bf16")
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.needs_grad_scaler
    assert not choose_precision(cpu, "fp16").needs_grad_scaler  # loss scaling only matters on GPUs
