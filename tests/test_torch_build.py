"""Which GPUs a PyTorch build has kernels for, read without importing torch where it matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mlpipe import torch_build
from mlpipe.torch_build import PROBE, TorchBuild, current_build, install_hint, installed_build, kernel_arch_list

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


def fake_torch(arch_list: list[str], arch_flags: str, cuda: str | None):
    """A torch as an older release shows itself on a login node: get_arch_list() is [] without a GPU."""
    return SimpleNamespace(
        cuda=SimpleNamespace(get_arch_list=lambda: list(arch_list)),
        version=SimpleNamespace(cuda=cuda),
        _C=SimpleNamespace(_cuda_getArchFlags=lambda: arch_flags),
    )


def test_the_kernels_are_read_without_a_gpu_on_older_releases_too():
    assert kernel_arch_list(torch) == torch.cuda.get_arch_list()
    older_cu121 = fake_torch([], "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90", "12.1")  # torch 2.4 on a login node
    assert kernel_arch_list(older_cu121) == ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
    assert TorchBuild("2.4.1+cu121", tuple(kernel_arch_list(older_cu121))).runs_on(V100)
    assert kernel_arch_list(fake_torch([], "", None)) == []  # a CPU-only build has none
    on_a_gpu_node = fake_torch(["sm_80", "sm_90"], "sm_80 sm_90", "12.4")
    assert kernel_arch_list(on_a_gpu_node) == ["sm_80", "sm_90"]


def test_the_probe_reads_the_kernels_as_an_older_release_on_a_login_node_would_show_them(tmp_path):
    # The child process that reads the build, with get_arch_list() answering [] as torch < 2.6 does without a GPU.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import torch\ntorch.cuda.get_arch_list = lambda: []\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    package_parent = str(Path(torch_build.__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", PROBE, package_parent], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [torch.__version__, torch.cuda.get_arch_list()]
