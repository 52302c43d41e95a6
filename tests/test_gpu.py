"""The GPU path, on a machine with a CUDA GPU (an OSC GPU node; skipped elsewhere).

Every other test runs its processes on the CPU (conftest.py hides the GPUs); these give them back, in
processes of their own, and train on the GPU as a study does: data on the device, bf16 or fp16, a resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import HOST_GPUS, copy_workflow, edit_config, job_env, snakemake


def gpu_environment() -> dict:
    """The test process's environment with the machine's GPUs visible again."""
    env = job_env()
    env["CUDA_VISIBLE_DEVICES"] = visible_devices()
    return env


def visible_devices() -> str:
    """CUDA_VISIBLE_DEVICES as the machine had it before conftest hid the GPUs (all of them when unset)."""
    if HOST_GPUS is not None:
        return HOST_GPUS
    probe = [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"]
    env = {key: value for key, value in job_env().items() if key != "CUDA_VISIBLE_DEVICES"}
    result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=300)
    count = int(result.stdout.strip() or 0) if result.returncode == 0 else 0
    return ",".join(str(index) for index in range(count))


# /dev/nvidiactl exists wherever NVIDIA's driver is loaded: elsewhere, skip without starting torch.
pytestmark = pytest.mark.skipif(
    not Path("/dev/nvidiactl").exists() or visible_devices() == "", reason="needs a CUDA GPU (run on a GPU node)"
)


def test_a_study_trains_on_the_gpu_with_reduced_precision(tmp_path):
    workdir = copy_workflow(tmp_path / "gpu-study")
    edit_config(workdir, {"train": {"epochs": 3}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0, 1]}})
    snakemake(workdir, "--cores", "2", env={"CUDA_VISIBLE_DEVICES": visible_devices()})
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    assert summary["test_acc"].min() > 0.5  # 3 epochs on digits, far above the 10% of chance
    for run_id in summary["run_id"]:
        run_config = json.loads((workdir / "results" / "runs" / run_id / "run_config.json").read_text())
        assert run_config["device"] != "cpu" and run_config["precision"] in ("bf16", "fp16")
        info = json.loads((workdir / "results" / "runs" / run_id / "run_info.json").read_text())
        assert info["usage"]["peak_gpu_memory_mb"] > 0
        # The GPU watch, through the real NVML: every epoch has its means, the run its figures.
        assert info["gpu_watch"]["recorded"] and info["gpu_watch"]["gpus"][0].startswith("GPU-")
        metrics = pd.read_csv(workdir / "results" / "runs" / run_id / "metrics.csv")
        assert metrics["gpu_util"].between(0, 100).all() and metrics["gpu_memory_mb"].gt(0).all()
        assert 0 <= info["usage"]["gpu_util"] <= 100 and 0 <= info["usage"]["data_wait_share"] <= 1
    assert pd.read_csv(workdir / "results" / "resources.csv")["gpu_util"].notna().all()


NVML_MAPPING = """
import json, pynvml, torch
from mlpipe.gpuwatch.nvml import Nvml
from mlpipe.gpuwatch.watch import job_gpu_uuids

uuids = job_gpu_uuids(torch.device("cuda", 0), torch.cuda.device_count())
nvml = Nvml.open()
found = [pynvml.nvmlDeviceGetUUID(nvml.handle(uuid)) for uuid in uuids]
reading = nvml.read(nvml.handle(uuids[0]))
print(json.dumps({"uuids": uuids, "found": found, "utilisation": reading.utilisation}))
"""


def test_each_cuda_device_is_found_in_nvml_by_its_uuid_in_any_visible_order():
    devices = visible_devices().split(",")
    for order in (devices, devices[::-1]):
        env = gpu_environment() | {"CUDA_VISIBLE_DEVICES": ",".join(order)}
        result = subprocess.run([sys.executable, "-c", NVML_MAPPING], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        assert seen["found"] == seen["uuids"] and 0 <= seen["utilisation"] <= 100


def test_a_run_stopped_on_the_gpu_resumes_there(processed_digits, tmp_path):
    from test_training import TrainProcess, hparams

    params = hparams(epochs=40, batch_size=8)
    env = gpu_environment()
    process = TrainProcess(tmp_path / "run", processed_digits, params, env=env)
    process.wait_for("epoch 2/40", timeout=600)
    process.process.send_signal(signal.SIGUSR1)
    assert process.finish() != 0 and "state saved, rerun to resume" in process.log
    resumed = TrainProcess(tmp_path / "run", processed_digits, params, env=env)
    assert resumed.finish(timeout=900) == 0, resumed.log
    assert "resuming" in resumed.log and " on cpu " not in resumed.log
    metrics = pd.read_csv(tmp_path / "run" / "out" / "metrics.csv")
    assert metrics["epoch"].tolist() == list(range(1, 41)) and metrics["val_acc"].iloc[-1] > 0.8
    assert os.path.exists(tmp_path / "run" / "out" / "best.pt")
