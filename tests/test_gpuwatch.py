"""The GPU, watched (mlpipe.gpuwatch): NVML's readings through a scripted stand-in for its calls, the sampler
thread, the data-wait clock, the flags, the training loop with a watched GPU, and a real CPU train job that has
no GPU to watch."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from mlpipe.gpuwatch import watch as watch_module
from mlpipe.gpuwatch.data_wait import DataWaitClock
from mlpipe.gpuwatch.figures import DATA_WAIT_CAUSE, describe, idle_flag, run_figures, weighted_mean
from mlpipe.gpuwatch.nvml import Nvml, NvmlUnavailable, Reading
from mlpipe.gpuwatch.sampler import GpuSampler
from mlpipe.gpuwatch.watch import GpuWatch, NoGpuWatch, job_gpu_uuids, open_gpu_watch
from mlpipe.layout import OPTIONAL_METRIC_COLUMNS

MIB = 2**20


class ScriptedNvml:
    """A stand-in for the ``pynvml`` module: the functions mlpipe calls, answering from a script.

    ``gpus`` maps a UUID to its readings, (utilisation %, memory MiB, power mW or None), given in turn; the last
    is repeated. ``lost_after``: reads of a GPU after which it answers only errors, as a GPU that fell off the bus.
    """

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: dict[str, list[tuple]], lost_after: int | None = None, no_utilisation: bool = False):
        self.script = gpus
        self.lost_after, self.no_utilisation = lost_after, no_utilisation
        self.reads = dict.fromkeys(gpus, 0)
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        if uuid not in self.script:
            raise self.NVMLError("Not Found")
        return uuid  # a handle is opaque to mlpipe: the UUID serves

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        if self.no_utilisation:
            raise self.NVMLError("Not Supported")  # NVML on a MIG slice
        with self._lock:
            count = self.reads[handle]
            if self.lost_after is not None and count >= self.lost_after:
                raise self.NVMLError("GPU is lost")
            self.reads[handle] += 1
        self._current = self.script[handle][min(count, len(self.script[handle]) - 1)]
        return SimpleNamespace(gpu=self._current[0], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=self._current[1] * MIB, total=80 * 1024 * MIB)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        if self._current[2] is None:
            raise self.NVMLError("Not Supported")
        return self._current[2]


def test_nvml_reads_utilisation_memory_in_mib_and_power_in_watts():
    stand_in = ScriptedNvml({"GPU-a": [(87, 5120, 251_500)], "GPU-b": [(3, 10, None)]})
    nvml = Nvml.open(stand_in)
    assert nvml.read(nvml.handle("GPU-a")) == Reading(87.0, 5120.0, 251.5)
    assert nvml.read(nvml.handle("GPU-b")) == Reading(3.0, 10.0, None)  # a board that does not report power
    with pytest.raises(NvmlUnavailable, match=r"^NVML finds no GPU GPU-c \(Not Found\)$"):
        nvml.handle("GPU-c")
    nvml.close()
    assert stand_in.calls == ["init", "shutdown"]


def test_without_the_package_nvml_is_unavailable_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    with pytest.raises(NvmlUnavailable, match="^the nvidia-ml-py package is not installed$"):
        Nvml.open()


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has NVIDIA's driver")
def test_without_the_driver_the_real_binding_is_unavailable_and_says_why():
    with pytest.raises(NvmlUnavailable, match=r"^NVML cannot start \(NVML Shared Library Not Found\)$"):
        Nvml.open()


def two_gpus(**options) -> ScriptedNvml:
    return ScriptedNvml(
        {"GPU-a": [(10, 1000, 100_000), (20, 2000, 200_000), (30, 3000, 300_000)], "GPU-b": [(90, 500, 50_000)]},
        **options,
    )


def test_the_sampler_means_every_reading_of_every_gpu_since_it_restarted():
    stand_in = two_gpus()
    sampler = GpuSampler(Nvml.open(stand_in), ["GPU-a", "GPU-b"], every=3600)  # read only when told
    assert sampler.sample() and sampler.sample()
    means = sampler.means()
    assert (means.utilisation, means.memory_mb, means.power_w, means.readings) == (52.5, 1000.0, 100.0, 4)
    sampler.restart()
    assert sampler.sample()
    assert sampler.means().utilisation == 60.0  # GPU-a's third reading (30) and GPU-b's (90)
    sampler.restart()
    means = sampler.means()  # a span shorter than the interval: read once, then
    assert means.readings == 2 and means.utilisation == 60.0 and stand_in.reads == {"GPU-a": 4, "GPU-b": 4}


def test_the_mean_power_is_empty_when_a_reading_has_none():
    stand_in = ScriptedNvml({"GPU-a": [(50, 100, 200_000)], "GPU-b": [(50, 100, None)]})
    sampler = GpuSampler(Nvml.open(stand_in), ["GPU-a", "GPU-b"], every=3600)
    sampler.sample()
    assert sampler.means().power_w is None and sampler.means().memory_mb == 100.0


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_sampler_reads_in_a_background_thread_until_it_is_closed():
    stand_in = ScriptedNvml({"GPU-a": [(40, 100, 1000)]})
    sampler = GpuSampler(Nvml.open(stand_in), ["GPU-a"], every=0.01)
    with sampler:
        wait_until(lambda: stand_in.reads["GPU-a"] >= 5)  # nobody but the thread asked
        assert sampler.means().readings >= 5
    reads = stand_in.reads["GPU-a"]
    time.sleep(0.1)
    assert stand_in.reads["GPU-a"] == reads and not sampler._thread.is_alive()


def test_a_gpu_that_stops_answering_ends_the_sampling_once_and_keeps_what_was_read(caplog):
    stand_in = ScriptedNvml({"GPU-a": [(40, 100, 1000)]}, lost_after=3)
    sampler = GpuSampler(Nvml.open(stand_in), ["GPU-a"], every=0.01)
    with caplog.at_level(logging.WARNING, logger="mlpipe"), sampler:
        wait_until(lambda: sampler.failure is not None)
        time.sleep(0.05)
        assert not sampler._thread.is_alive()  # stopped by itself
        means = sampler.means()
    assert means.readings == 3 and means.utilisation == 40.0
    warnings = [record.getMessage() for record in caplog.records if "gpu watch" in record.getMessage()]
    assert warnings == [
        "gpu watch: sampling stopped: NVML cannot read the GPU's utilisation or memory (GPU is lost); "
        "the figures read so far are kept"
    ]
    sampler.restart()
    assert sampler.means() is None  # and asks NVML no more


def test_the_watch_finds_each_gpu_by_its_uuid_whatever_its_index(caplog):
    stand_in = two_gpus()
    # CUDA_VISIBLE_DEVICES=1,0: the job's first CUDA device is the node's GPU-b.
    with caplog.at_level(logging.INFO, logger="mlpipe"):
        watch = open_gpu_watch(["GPU-b"], stand_in, every=3600)
    assert isinstance(watch, GpuWatch)
    assert watch.status == {"recorded": True, "gpus": ["GPU-b"], "sample_every_seconds": 3600}
    assert [record.getMessage() for record in caplog.records] == [
        "gpu watch: sampling GPU-b every 3600 s (utilisation, memory, power)"
    ]
    with watch:
        watch.start_epoch()
        assert watch.epoch_figures() == {"gpu_util": 90.0, "gpu_memory_mb": 500.0, "gpu_power_w": 50.0}
    assert stand_in.reads["GPU-a"] == 0 and stand_in.calls[-1] == "shutdown"


@pytest.mark.parametrize(
    "uuids, stand_in, level, reason",
    [
        ([], two_gpus(), logging.INFO, "training on the CPU, no GPU to watch"),
        (["GPU-c"], two_gpus(), logging.WARNING, "NVML finds no GPU GPU-c (Not Found)"),
        (
            ["GPU-a"],
            two_gpus(no_utilisation=True),
            logging.WARNING,
            "NVML cannot read the GPU's utilisation or memory (Not Supported)",
        ),
    ],
    ids=["cpu", "unknown gpu", "no utilisation (MIG)"],
)
def test_where_nothing_can_be_watched_one_line_says_why_and_nothing_is_recorded(uuids, stand_in, level, reason, caplog):
    with caplog.at_level(logging.INFO, logger="mlpipe"):
        watch = open_gpu_watch(uuids, stand_in)
    assert isinstance(watch, NoGpuWatch) and watch.status == {"recorded": False, "reason": reason}
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (level, f"gpu watch: {reason}; GPU utilisation, memory and power are not recorded")
    ]
    with watch:
        watch.start_epoch()
        assert watch.epoch_figures() == {"gpu_util": None, "gpu_memory_mb": None, "gpu_power_w": None}
    assert stand_in.calls in ([], ["init", "shutdown"])  # NVML, if started, is stopped again


def test_a_job_watches_one_gpu_per_process_named_by_uuid(monkeypatch):
    uuids = ["6f1c0a2e-0000-4000-8000-00000000000a", "6f1c0a2e-0000-4000-8000-00000000000b"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=uuids[index]))
    cuda = torch.device("cuda", 0)
    assert job_gpu_uuids(cuda, world_size=2) == [f"GPU-{uuid}" for uuid in uuids]
    assert job_gpu_uuids(cuda, world_size=1) == [f"GPU-{uuids[0]}"]  # a single process uses its one GPU
    assert job_gpu_uuids(torch.device("cpu"), world_size=1) == []
    assert watch_module.watch_job_gpus(cuda, 2, is_main=False).status == {"recorded": False, "reason": None}


class SlowBatches:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def batch(self, plan, step):
        time.sleep(self.seconds)
        return ("images", step), ("labels", step)


def test_the_data_wait_clock_counts_the_time_spent_producing_batches():
    clock = DataWaitClock()
    assert clock.batch(SlowBatches(0.02), None, 3) == (("images", 3), ("labels", 3))
    clock.batch(SlowBatches(0.02), None, 4)
    assert 0.04 <= clock.seconds < 1
    assert clock.share_of(clock.seconds * 4) == pytest.approx(0.25)
    assert clock.share_of(0.0) == 0.0 and clock.share_of(clock.seconds / 2) == 1.0


def test_flags_name_the_likely_cause_of_an_idle_gpu():
    assert idle_flag(23.4, 0.61, 512) == (
        "gpu idle: mean utilisation 23% — data wait 61% of step time: the data path starves the GPU"
    )
    assert idle_flag(31.0, 0.04, 64) == (
        "gpu idle: mean utilisation 31% — data wait 4% of step time: "
        "a batch of 64 is too small to keep the GPU busy (raise train.batch_size)"
    )
    assert idle_flag(49.9, 0.25, 64).endswith("the data path starves the GPU")
    assert idle_flag(40.0, None, 64) == "gpu idle: mean utilisation 40%"
    assert idle_flag(50.0, 0.9, 64) is None and idle_flag(None, 0.9, 64) is None


def test_a_resumed_runs_figures_cover_every_measured_epoch_by_its_seconds():
    rows = [
        {"epoch": 1, "epoch_seconds": 10.0},  # saved before the columns existed
        {"epoch": 2, "epoch_seconds": 10.0, "data_wait_share": 0.5, "gpu_util": 20.0, "gpu_memory_mb": 100.0},
        {"epoch": 3, "epoch_seconds": 30.0, "data_wait_share": 0.1, "gpu_util": 40.0, "gpu_memory_mb": 300.0},
    ]
    for row in rows[1:]:
        row["gpu_power_w"] = None
    figures = run_figures(rows, batch_size=128)
    assert figures == {
        "gpu_util": 35.0,
        "gpu_memory_mb": 250.0,
        "gpu_power_w": None,
        "data_wait_share": pytest.approx(0.2),
        "gpu_flag": "gpu idle: mean utilisation 35% — data wait 20% of step time: "
        "a batch of 128 is too small to keep the GPU busy (raise train.batch_size)",
    }
    assert describe(figures) == "gpu use: mean utilisation 35%, 250 MB per GPU; data wait 20% of step time"
    assert weighted_mean(rows[:1], "gpu_util") is None
    assert describe(run_figures(rows[:1], 128)) is None


# The training loop with a watched GPU: the run trains on the CPU, the stand-in answers for its "GPU".
SAMPLE_EVERY = 0.05


def train_in_process(run_dir: Path, processed: Path, monkeypatch, stand_in: ScriptedNvml, **overrides):
    """One run through the real training loop in this process, its GPU watch answered by ``stand_in``."""
    from test_training import hparams

    from mlpipe.training import loop
    from mlpipe.training.outputs import TrainOutputs

    def watch_stand_in(device, world_size, is_main):
        return open_gpu_watch(["GPU-a"], stand_in, every=SAMPLE_EVERY)

    monkeypatch.setattr(loop, "watch_job_gpus", watch_stand_in)
    out = run_dir / "out"
    outputs = TrainOutputs(out / "metrics.csv", out / "best.pt", out / "last.pt", out / "run_config.json", out)
    job = loop.TrainJob(run_dir.name, hparams(**overrides), processed, outputs, run_dir / "state", threads=1)
    threads = torch.get_num_threads()
    try:
        loop.train_run(job)
    finally:
        torch.set_num_threads(threads)  # as this test process had it
    return pd.read_csv(out / "metrics.csv"), json.loads((out / "run_info.json").read_text())


def slow_batches(monkeypatch, seconds: float) -> None:
    from mlpipe.training.data import TrainBatches

    batch = TrainBatches.batch

    def slow(self, plan, step):
        time.sleep(seconds)
        return batch(self, plan, step)

    monkeypatch.setattr(TrainBatches, "batch", slow)


@pytest.mark.parametrize(
    "data_path, cause",
    [
        ("as it is", "a batch of 64 is too small to keep the GPU busy (raise train.batch_size)"),
        ("slowed", "the data path starves the GPU"),
    ],
)
def test_a_watched_runs_epochs_record_the_gpu_and_an_idle_gpu_is_flagged_with_its_cause(
    processed_digits, tmp_path, monkeypatch, caplog, data_path, cause
):
    if data_path == "slowed":
        slow_batches(monkeypatch, 0.05)  # a step of small_cnn on 64 8x8 images takes about 10 ms on one core
    stand_in = ScriptedNvml({"GPU-a": [(23, 1000, 100_000)]})
    with caplog.at_level(logging.INFO, logger="mlpipe"):
        metrics, info = train_in_process(
            tmp_path / "run", processed_digits, monkeypatch, stand_in, epochs=2, batch_size=64
        )
    assert list(metrics.columns[-4:]) == OPTIONAL_METRIC_COLUMNS
    assert metrics["gpu_util"].tolist() == [23.0, 23.0] and metrics["gpu_memory_mb"].tolist() == [1000.0, 1000.0]
    assert metrics["gpu_power_w"].tolist() == [100.0, 100.0]
    shares = metrics["data_wait_share"]
    assert (
        shares.between(DATA_WAIT_CAUSE, 1).all() if data_path == "slowed" else shares.between(0, DATA_WAIT_CAUSE).all()
    )
    assert stand_in.reads["GPU-a"] >= 2 and stand_in.calls[-1] == "shutdown"

    usage = info["usage"]
    assert info["gpu_watch"] == {"recorded": True, "gpus": ["GPU-a"], "sample_every_seconds": SAMPLE_EVERY}
    assert (usage["gpu_util"], usage["gpu_memory_mb"], usage["gpu_power_w"]) == (23.0, 1000.0, 100.0)
    assert usage["data_wait_share"] == pytest.approx(
        (shares * metrics["epoch_seconds"]).sum() / metrics["epoch_seconds"].sum()
    )
    share = f"{100 * usage['data_wait_share']:.0f}%"
    flag = f"gpu idle: mean utilisation 23% — data wait {share} of step time: {cause}"
    assert usage["gpu_flag"] == flag
    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name.startswith("mlpipe")]
    assert ("INFO", f"gpu use: mean utilisation 23%, 1,000 MB, 100 W per GPU; data wait {share} of step time") in logged
    assert ("WARNING", flag) in logged

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "out" / "tensorboard")).Reload()
    assert [event.value for event in events.Scalars("gpu/utilisation")] == [23.0, 23.0]
    assert [event.step for event in events.Scalars("time/data_wait_share")] == [1, 2]


def test_a_busy_gpu_is_not_flagged(processed_digits, tmp_path, monkeypatch):
    stand_in = ScriptedNvml({"GPU-a": [(97, 30_000, None)]})
    metrics, info = train_in_process(tmp_path / "run", processed_digits, monkeypatch, stand_in, epochs=1)
    assert metrics["gpu_util"].tolist() == [97.0] and metrics["gpu_power_w"].isna().all()
    assert info["usage"]["gpu_util"] == 97.0 and info["usage"]["gpu_flag"] is None


def test_a_cpu_job_records_its_data_wait_says_once_that_no_gpu_is_watched_and_records_nothing_of_one(
    processed_digits, tmp_path
):
    from test_training import hparams, train

    run_dir = tmp_path / "cpu"
    process = train(run_dir, processed_digits, hparams(epochs=3))
    watch_lines = [line for line in process.log.splitlines() if "gpu watch" in line]
    assert len(watch_lines) == 1 and watch_lines[0].endswith(
        "gpu watch: training on the CPU, no GPU to watch; GPU utilisation, memory and power are not recorded"
    )
    assert "gpu use" not in process.log and "gpu idle" not in process.log
    metrics = pd.read_csv(run_dir / "out" / "metrics.csv")
    assert list(metrics.columns[-4:]) == OPTIONAL_METRIC_COLUMNS
    assert metrics["data_wait_share"].between(0, 1).all() and metrics["data_wait_share"].gt(0).all()
    assert metrics[["gpu_util", "gpu_memory_mb", "gpu_power_w"]].isna().all().all()  # empty: not measured
    info = json.loads((run_dir / "out" / "run_info.json").read_text())
    assert info["gpu_watch"] == {"recorded": False, "reason": "training on the CPU, no GPU to watch"}
    assert info["usage"]["gpu_util"] is None and info["usage"]["gpu_flag"] is None
    assert 0 < info["usage"]["data_wait_share"] < 1
