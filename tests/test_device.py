"""The device and precision of a run."""

from __future__ import annotations

import torch

from mlpipe.device import choose_precision


def test_precision_on_cpu_is_fp32_unless_asked():
    cpu = torch.device("cpu")
    assert choose_precision(cpu).name == "fp32" and choose_precision(cpu).autocast_dtype is None
    bf16 = choose_precision(cpu, "bf16")
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.needs_grad_scaler
    assert not choose_precision(cpu, "fp16").needs_grad_scaler  # loss scaling only matters on GPUs
