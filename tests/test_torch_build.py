"""Which GPUs a PyTorch build has kernels for, read without importing torch where it matters."""

from __future__ import annotations

import json

import pytest
import torch

from mlpipe.torch_build import TorchBuild, current_build, install_hint, installed_build

# PyPI's torch 2.14.1 (CUDA 13) and PyTorch's CUDA 12.6 build of it, as torch.cuda.get_arch_list() lists them.
PYPI_CU130 = TorchBuild("2.14.1+cu130", ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"))
CU126 = TorchBuild("2.14.1+cu126", ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"))
V100, A100, A10, H100, B200 = (7, 0), (8, 0), (8, 6), (9, 0), (10, 0)


@pytest.mark.parametrize(
    "build, capability, runs",
    [
        (PYPI_CU130, V100, False),  # Pitzer: CUDA 13 builds dropped Volta
        (PYPI_CU130, A100, True),
        (PYPI_CU130, H100, True),
        (CU126, V100, True),
        (CU126, H100, True),
        (CU126, B200, False),  # sm_90 machine code does not run on another major
        (TorchBuild("x", ("sm_80",)), A10, True),  # sm_80 runs on 8.6: same major, newer minor
        (TorchBuild("x", ("sm_86",)), A100, False),  # but not on an older minor
        (TorchBuild("x", ("sm_80", "compute_80")), B200, True),  # PTX is compiled for any newer GPU
        (TorchBuild("x", ("compute_90",)), A100, False),
        (TorchBuild("x", ("sm_90a",)), H100, True),  # arch-specific code: exactly 9.0
        (TorchBuild("x", ("sm_100a",)), (10, 3), False),
        (TorchBuild("x", ("sm_100f",)), (10, 3), True),  # family code: 10.x from 10.0
        (TorchBuild("2.14.1+cpu", ()), H100, False),
    ],
)
def test_a_build_runs_on_the_gpus_its_kernels_cover(build, capability, runs):
    assert build.runs_on(capability) is runs


def test_the_install_hint_names_the_build_that_has_the_kernels():
    assert install_hint(V100) == "install PyTorch's CUDA 12.6 build: make setup TORCH_BUILD=cu126"
    assert install_hint(H100) == "install PyPI's build: make setup"
    assert TorchBuild("2.14.1+cpu", ()).describe() == "torch 2.14.1+cpu (built for no GPU: a CPU-only build)"


def test_the_installed_build_is_read_once_then_cached(tmp_path):
    assert current_build() == TorchBuild(torch.__version__, tuple(torch.cuda.get_arch_list()))
    assert installed_build(tmp_path) == current_build()
    (cache,) = tmp_path.iterdir()
    # A second call reads the cache and starts no torch: what the cache says is what it returns.
    cache.write_text(json.dumps(["2.14.1+cu126", ["sm_70"]]))
    assert installed_build(tmp_path) == TorchBuild("2.14.1+cu126", ("sm_70",))
    # A cache of another installation (another key) is not used.
    cache.rename(tmp_path / "torch-build-0123456789abcdef0123.json")
    assert installed_build(tmp_path) == current_build()
