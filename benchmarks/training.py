"""Training throughput: the seed guide's loop against this engine, on the same device and data shape.

Rows (CIFAR-sized synthetic data, 3x32x32 uint8, 10 classes):
- seed-style: torchvision ResNet-18, DataLoader with PIL transforms (random crop with padding 4, flip,
  ToTensor, Normalize), fp32, batch 128, workers = cores;
- engine ResNet-18: the same torchvision ResNet-18 trained by mlpipe's engine (data on the device,
  augmentation on the device, bf16/fp16 autocast, channels_last, fused SGD, torch.compile on CUDA);
- engine airbench: the small fast network, same engine.

Printed per row: images/s, ratio to the seed-style loop, the GPU's mean utilisation over the timed steps (sampled
through NVML by mlpipe's GPU watch, every 0.1 s), peak GPU memory, and the share of the GPU's dense bf16 peak that the
row's model FLOPs reach. Targets on an H100/H200 (issue 5): ResNet-18 >= 4.5x the
seed-style loop, airbench >= 250k images/s. Without a GPU it runs a small size on the CPU and prints the
same table (GPU columns empty; so too the utilisation where NVML cannot be used).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from workflow_copy import measured_on

from mlpipe.config import load_schema, train_defaults
from mlpipe.device import Precision, choose_precision, device_name
from mlpipe.gpuwatch.watch import GpuWatch, NoGpuWatch, job_gpu_uuids, open_gpu_watch
from mlpipe.models.factory import build_model
from mlpipe.processed import Normalizer
from mlpipe.training.data import Augmentation, TrainBatches
from mlpipe.training.engine import Engine

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
UTILISATION_EVERY_SECONDS = 0.1  # a row's timed steps last seconds on a GPU: sample more often than a train job
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
# Dense bf16 tensor-core peaks (FLOP/s) from NVIDIA's data sheets, matched against the device name in this
# order (the first key found wins; plain "H100" is the SXM card); V100 has no bf16, its fp16 peak is used.
BF16_PEAK = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "A100": 312e12,
    "V100": 125e12,
}


@dataclass
class Result:
    name: str
    batch_size: int
    images_per_second: float
    peak_memory_gb: float | None
    flops_per_image: float | None
    gpu_util: float | None  # mean % over the timed steps


def synthetic_cifar(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, count).astype(np.int64)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def seed_style_loop(
    images, labels, device, warmup: int, steps: int, workers: int, watch: GpuWatch | NoGpuWatch
) -> Result:
    """The seed guide's training loop: PIL transforms in DataLoader workers, fp32."""
    import torchvision
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )

    class ArrayDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, index):
            return transform(Image.fromarray(images[index].transpose(1, 2, 0))), int(labels[index])

    loader = torch.utils.data.DataLoader(
        ArrayDataset(),
        batch_size=128,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    model = torchvision.models.resnet18(num_classes=10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    reset_memory(device)
    done, started = 0, None
    while done < warmup + steps:
        for batch_images, batch_labels in loader:
            if done == warmup:
                synchronize(device)
                watch.start_epoch()
                started = time.perf_counter()
            batch_images, batch_labels = (
                batch_images.to(device, non_blocking=True),
                batch_labels.to(device, non_blocking=True),
            )
            optimizer.zero_grad(set_to_none=True)
            criterion(model(batch_images), batch_labels).backward()
            optimizer.step()
            done += 1
            if done == warmup + steps:
                break
    synchronize(device)
    rate = steps * 128 / (time.perf_counter() - started)
    utilisation = watch.epoch_figures()["gpu_util"]
    return Result("seed-style ResNet-18 (DataLoader+PIL, fp32)", 128, rate, peak_memory_gb(device), None, utilisation)


def engine_loop(
    model_name: str,
    label: str,
    images,
    labels,
    device,
    batch_size: int,
    warmup: int,
    steps: int,
    compile_model: bool,
    watch: GpuWatch | NoGpuWatch,
) -> Result:
    """mlpipe's engine: the same step the training loop runs, data and augmentation on the device."""
    hparams = train_defaults(
        load_schema(SCHEMA_FILE),
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        epochs=1000,
        schedule="constant",
        warmup_epochs=0,
        compile=compile_model,
    )
    precision = choose_precision(device)
    channels_last = device.type == "cuda"
    batches = TrainBatches(
        images,
        labels,
        batch_size=batch_size,
        device=device,
        normalizer=Normalizer(CIFAR_MEAN, CIFAR_STD, device, channels_last),
        augmentation=Augmentation(crop_padding=4, flip=True),
        seed=0,
    )
    torch.manual_seed(0)
    model = build_model(model_name, 3, 10, input_shape=images.shape[1:])  # as training builds it
    engine = Engine.build(model, hparams, device, precision, batches.steps_per_epoch)
    engine.model.train()
    flops = flops_per_image(engine, batches, precision)
    reset_memory(device)
    plan, epoch, step_in_epoch = batches.plan(0), 0, 0
    for done in range(warmup + steps):
        if done == warmup:
            synchronize(device)
            watch.start_epoch()
            started = time.perf_counter()
        if step_in_epoch == batches.steps_per_epoch:
            epoch, step_in_epoch = epoch + 1, 0
            plan = batches.plan(epoch)
        engine.step(*batches.batch(plan, step_in_epoch))
        step_in_epoch += 1
    synchronize(device)
    rate = steps * batch_size / (time.perf_counter() - started)
    return Result(
        f"{label} ({precision.name}{', compiled' if compile_model else ''})",
        batch_size,
        rate,
        peak_memory_gb(device),
        flops,
        watch.epoch_figures()["gpu_util"],
    )


def flops_per_image(engine: Engine, batches: TrainBatches, precision: Precision) -> float:
    """Model FLOPs of one training step (forward and backward) per image, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    images, labels = batches.batch(batches.plan(0), 0)
    model = engine.model
    with (
        FlopCounterMode(display=False) as counter,
        torch.autocast(
            images.device.type, dtype=precision.autocast_dtype, enabled=precision.autocast_dtype is not None
        ),
    ):
        engine.criterion(model(images), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(labels)


def bf16_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="dataset size (default: 50000 on GPU, 2048 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 200 on GPU, 4 on CPU)")
    parser.add_argument("--no-compile", action="store_true", help="do not torch.compile the engine's models")
    args = parser.parse_args()
    print(measured_on())

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    count = args.images or (50_000 if gpu else 2048)
    steps = args.steps or (200 if gpu else 4)
    warmup = 30 if gpu else 2
    workers = len(os.sched_getaffinity(0))
    compile_model = gpu and not args.no_compile
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    images, labels = synthetic_cifar(count)

    with open_gpu_watch(job_gpu_uuids(device, 1), every=UTILISATION_EVERY_SECONDS) as watch:
        results = [
            seed_style_loop(images, labels, device, warmup, steps, workers, watch),
            engine_loop(
                "torchvision.resnet18",
                "engine ResNet-18",
                images,
                labels,
                device,
                512 if gpu else 128,
                warmup,
                steps,
                compile_model,
                watch,
            ),
            engine_loop(
                "airbench",
                "engine airbench",
                images,
                labels,
                device,
                1024 if gpu else 256,
                warmup,
                steps,
                compile_model,
                watch,
            ),
        ]

    peak = bf16_peak(device)
    watched = "GPU utilisation through NVML" if isinstance(watch, GpuWatch) else f"no GPU utilisation: {watch.reason}"
    print(
        f"device: {device_name(device)}; {count} synthetic 3x32x32 images; {steps} timed steps per row; "
        f"{workers} CPU cores; {watched}"
    )
    print(
        f"{'setup':<52} {'batch':>5} {'images/s':>10} {'vs seed':>8} {'GPU util':>8} {'peak GPU mem':>12} "
        f"{'% bf16 peak':>11}"
    )
    baseline = results[0].images_per_second
    for result in results:
        memory = f"{result.peak_memory_gb:.2f} GB" if result.peak_memory_gb is not None else "-"
        share = "-"
        if peak and result.flops_per_image:
            share = f"{100 * result.flops_per_image * result.images_per_second / peak:.1f} %"
        utilisation = f"{result.gpu_util:.0f} %" if result.gpu_util is not None else "-"
        print(
            f"{result.name:<52} {result.batch_size:>5} {result.images_per_second:>10,.0f} "
            f"{result.images_per_second / baseline:>7.2f}x {utilisation:>8} {memory:>12} {share:>11}"
        )


if __name__ == "__main__":
    main()
