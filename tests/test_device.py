"""The device and precision of a run."""

from __future__ import annotations

import pytest
import torch

from mlpipe.device import NoKernelError, choose_device, choose_precision


def test_precision_on_cpu_is_fp32_unless_asked():
    cpu = torch.device("cpu")
    assert choose_precision(cpu).name == "fp32" and choose_precision(cpu).autocast_dtype is None
    bf16 = choose_precision(cpu, "bf16")
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.needs_grad_scaler
    assert not choose_precision(cpu, "fp16").needs_grad_scaler  # loss scaling only matters on GPUs


def pretend_a_gpu(monkeypatch, name: str, capability: tuple[int, int]) -> None:
    """What torch.cuda reports on a node with one such GPU (no GPU here; the build's arch list stays real)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


@pytest.mark.skipif("sm_70" in torch.cuda.get_arch_list(), reason="needs a build without Volta kernels (PyPI's)")
def test_a_gpu_the_build_has_no_kernel_for_stops_the_job_at_once(monkeypatch):
    pretend_a_gpu(monkeypatch, "Tesla V100-SXM2-32GB", (7, 0))
    with pytest.raises(NoKernelError) as stopped:
        choose_device(1)
    assert str(stopped.value) == (
        f"GPU 0 (Tesla V100-SXM2-32GB, compute capability 7.0) has no kernel in torch {torch.__version__} "
        f"(built for {' '.join(torch.cuda.get_arch_list())}): "
        "install PyTorch's CUDA 12.6 build: make setup TORCH_BUILD=cu126"
    )


@pytest.mark.skipif("sm_90" not in torch.cuda.get_arch_list(), reason="needs a build with Hopper kernels")
def test_a_gpu_the_build_has_kernels_for_is_chosen(monkeypatch):
    pretend_a_gpu(monkeypatch, "NVIDIA H100", (9, 0))
    assert choose_device(1) == torch.device("cuda", 0)
