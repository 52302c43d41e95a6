"""What watching the GPU costs a training step: the sampler thread and the data-wait clock.

The engine's training step (mlpipe.training.engine, the step the train job runs) on CIFAR-sized synthetic data,
timed in interleaved rounds, each variant against the round's run without the sampler, so that a drift of the
machine's speed touches every variant alike:
- without the sampler;
- with the sampler reading every 2 s, as train jobs run it;
- with the sampler reading every few milliseconds, hundreds of times as often, which makes what one reading costs
  the step measurable: (time of the round - time without) / readings. A train job reads every 2 s, so its share
  of step time is that cost / 2 s.
On a GPU with NVML the sampler reads the real GPU through nvidia-ml-py; elsewhere a stand-in for NVML's calls answers,
each call sleeping 0.2 ms with Python's lock released, as a ctypes call into NVML does. On the CPU the step runs on
one thread (--threads), as a one-core train job does.

The data-wait clock (two host clock readings around each batch) is timed on its own, in a tight loop, and printed as
a share of the median step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from training import CIFAR_MEAN, CIFAR_STD, synchronize, synthetic_cifar
from workflow_copy import measured_on

from mlpipe.config import load_schema, train_defaults
from mlpipe.device import choose_precision, device_name
from mlpipe.gpuwatch.data_wait import DataWaitClock
from mlpipe.gpuwatch.sampler import SAMPLE_EVERY_SECONDS
from mlpipe.gpuwatch.watch import GpuWatch, job_gpu_uuids, open_gpu_watch
from mlpipe.models.factory import build_model
from mlpipe.processed import Normalizer
from mlpipe.training.data import Augmentation, TrainBatches
from mlpipe.training.engine import Engine

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
STAND_IN_CALL_SECONDS = 0.0002


class StandInNvml:
    """NVML's calls as mlpipe makes them, each sleeping like a call into the driver; one GPU, busy."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return uuid

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        time.sleep(STAND_IN_CALL_SECONDS)
        return SimpleNamespace(gpu=95, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        time.sleep(STAND_IN_CALL_SECONDS)
        return SimpleNamespace(used=4 << 30)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        time.sleep(STAND_IN_CALL_SECONDS)
        return 300_000


def training_steps(device: torch.device, model_name: str, batch_size: int) -> Callable[[int, bool], None]:
    """A function running n of the engine's training steps, timing each batch with a DataWaitClock or not."""
    hparams = train_defaults(load_schema(SCHEMA_FILE), lr=0.05, epochs=1000, schedule="constant", warmup_epochs=0)
    images, labels = synthetic_cifar(max(4096, 4 * batch_size))
    batches = TrainBatches(
        images,
        labels,
        batch_size=batch_size,
        device=device,
        normalizer=Normalizer(CIFAR_MEAN, CIFAR_STD, device, device.type == "cuda"),
        augmentation=Augmentation(crop_padding=4, flip=True),
        seed=0,
    )
    torch.manual_seed(0)
    model = build_model(model_name, 3, 10, input_shape=images.shape[1:])
    engine = Engine.build(model, hparams, device, choose_precision(device), batches.steps_per_epoch)
    engine.model.train()
    state = {"epoch": 0, "step": 0, "plan": batches.plan(0)}

    def run(steps: int, timed_batches: bool) -> None:
        clock = DataWaitClock()
        for _ in range(steps):
            if state["step"] == batches.steps_per_epoch:
                state["epoch"], state["step"] = state["epoch"] + 1, 0
                state["plan"] = batches.plan(state["epoch"])
            if timed_batches:
                batch = clock.batch(batches, state["plan"], state["step"])
            else:
                batch = batches.batch(state["plan"], state["step"])
            engine.step(*batch)
            state["step"] += 1
        synchronize(device)

    return run


def timed(run: Callable[[int, bool], None], steps: int, watch: GpuWatch | None) -> tuple[float, int]:
    """Seconds for ``steps`` steps, and the readings the watch took meanwhile (per GPU)."""
    if watch is None:
        started = time.perf_counter()
        run(steps, False)
        return time.perf_counter() - started, 0
    with watch:
        watch.start_epoch()
        started = time.perf_counter()
        run(steps, False)
        seconds = time.perf_counter() - started
        readings = watch.sampler.means().readings // len(watch.gpus)
    return seconds, readings


def clock_overhead_seconds(calls: int = 200_000) -> float:
    """What timing one batch with a DataWaitClock adds, from a tight loop over a batch that costs nothing."""
    batches, clock = SimpleNamespace(batch=lambda plan, step: None), DataWaitClock()
    best = []
    for _ in range(5):
        started = time.perf_counter()
        for step in range(calls):
            batches.batch(None, step)
        plain = time.perf_counter() - started
        started = time.perf_counter()
        for step in range(calls):
            clock.batch(batches, None, step)
        best.append((time.perf_counter() - started - plain) / calls)
    return min(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of each variant")
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default: 300 on GPU, 20 on CPU)")
    parser.add_argument("--fast-every", type=float, default=0.001, help="the amplified sampler's interval, seconds")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's threads on the CPU")
    args = parser.parse_args()
    print(measured_on())

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads)
    model_name, batch_size = ("torchvision.resnet18", 512) if gpu else ("small_cnn", 128)
    steps = args.steps or (300 if gpu else 20)
    uuids = job_gpu_uuids(device, 1) or ["GPU-stand-in"]
    stand_in = None if gpu else StandInNvml()
    if gpu:
        torch.backends.cudnn.benchmark = True
    run = training_steps(device, model_name, batch_size)
    run(10, False)  # warm up

    def watch(every: float) -> GpuWatch:
        opened = open_gpu_watch(uuids, stand_in, every=every)
        if not isinstance(opened, GpuWatch):
            raise SystemExit(f"no GPU watch: {opened.reason}")
        return opened

    variants = {
        "without": None,
        "every 2 s": SAMPLE_EVERY_SECONDS,
        f"every {args.fast_every * 1000:g} ms": args.fast_every,
    }
    seconds = {name: [] for name in variants}
    fast_readings = []
    for round_number in range(args.rounds):
        names = list(variants)
        for name in names[round_number % 3 :] + names[: round_number % 3]:  # each variant in each place in turn
            every = variants[name]
            elapsed, readings = timed(run, steps, None if every is None else watch(every))
            seconds[name].append(elapsed)
            if every == args.fast_every:
                fast_readings.append(readings)
    # Each variant against the same round's run without the sampler.
    paired = {
        name: [mine / alone - 1 for mine, alone in zip(rounds, seconds["without"])] for name, rounds in seconds.items()
    }
    fast, alone = seconds[list(variants)[2]], seconds["without"]
    extra_per_reading = [(mine - other) / readings for mine, other, readings in zip(fast, alone, fast_readings)]

    nvml = "NVML (nvidia-ml-py)" if gpu else f"a stand-in for NVML ({STAND_IN_CALL_SECONDS * 1000:g} ms per call)"
    print(
        f"device: {device_name(device)}, {torch.get_num_threads()} thread(s); {model_name}, batch {batch_size}; "
        f"{steps} steps per round, "
        f"{args.rounds} interleaved rounds; sampler through {nvml}"
    )
    step_seconds = statistics.median(seconds["without"]) / steps
    print(f"{'variant':<22} {'median step':>12} {'vs without, median of rounds':>29} {'lowest..highest':>18}")
    for name, rounds in seconds.items():
        changes, step = paired[name], statistics.median(rounds) / steps
        print(
            f"{name:<22} {step * 1000:>9.1f} ms {100 * statistics.median(changes):>+28.2f}% "
            f"{100 * min(changes):>+8.1f}..{100 * max(changes):+.1f}%"
        )
    per_reading = statistics.median(extra_per_reading)
    low, high = statistics.quantiles(extra_per_reading, n=4)[0], statistics.quantiles(extra_per_reading, n=4)[2]
    print(
        f"one reading costs the training loop {per_reading * 1e6:.0f} us (median over rounds at "
        f"{args.fast_every * 1000:g} ms; quartiles {low * 1e6:.0f}..{high * 1e6:.0f} us); read every "
        f"{SAMPLE_EVERY_SECONDS:g} s that is {100 * per_reading / SAMPLE_EVERY_SECONDS:.3f}% of step time "
        f"(upper quartile {100 * high / SAMPLE_EVERY_SECONDS:.3f}%)"
    )
    clock = clock_overhead_seconds()
    print(
        f"data-wait clock: {clock * 1e9:.0f} ns per batch, {100 * clock / step_seconds:.1e}% of a "
        f"{step_seconds * 1000:.1f} ms step"
    )


if __name__ == "__main__":
    main()
