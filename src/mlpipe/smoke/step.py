"""One training step of a model at the study's largest batch size: its time and its peak GPU memory.

The step is the engine's own (:meth:`mlpipe.training.engine.Engine.step`), on the miniature's images repeated to
the batch size, after one warm-up step; on a GPU its memory peak is set against the GPU's memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mlpipe.device import choose_device, choose_precision, device_name
from mlpipe.models.factory import build_model
from mlpipe.processed import Normalizer, load_meta, load_split
from mlpipe.training.data import to_device_tensor
from mlpipe.training.engine import Engine

TIMED_STEPS = 3


def measure_step(hparams: dict, processed_dir: Path, gpus: int, allow_cpu: bool, threads: int | None) -> dict:
    """Time one step of ``hparams``'s model at its batch size; peak GPU memory against the GPU's."""
    if threads:
        torch.set_num_threads(threads)
    device = choose_device(gpus, 0, allow_cpu)
    precision = choose_precision(device, hparams["precision"])
    meta = load_meta(processed_dir)
    images, labels = load_split(processed_dir, "train")
    picks = np.arange(hparams["batch_size"]) % len(labels)  # the few samples, repeated to a full batch
    normalizer = Normalizer.of(meta, device, channels_last=device.type == "cuda")
    batch = normalizer(to_device_tensor(images[picks], device))
    targets = torch.from_numpy(labels[picks]).to(device)
    torch.manual_seed(hparams["seed"])
    model = build_model(
        hparams["model"],
        meta["shape"][0],
        meta["num_classes"],
        input_shape=meta["shape"],
        model_args=hparams["model_args"],
    )
    engine = Engine.build(model, hparams, device, precision, steps_per_epoch=TIMED_STEPS + 1)
    engine.step(batch, targets)  # warm-up: allocations, kernel choice
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(TIMED_STEPS):
        engine.step(batch, targets)
    _synchronize(device)
    seconds = (time.perf_counter() - started) / TIMED_STEPS
    result = {
        "model": hparams["model"],
        "model_args": hparams["model_args"],
        "batch_size": hparams["batch_size"],
        "device": device_name(device),
        "precision": precision.name,
        "seconds_per_step": seconds,
        "images_per_second": hparams["batch_size"] / seconds,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["gpu_memory_mb"] = torch.cuda.get_device_properties(device).total_memory / 2**20
    return result


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
