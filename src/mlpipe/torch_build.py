"""Which GPUs the installed PyTorch build has kernels for, and the install that has them.

A CUDA build of PyTorch lists the GPU architectures it carries code for (:func:`kernel_arch_list`,
readable without a GPU). ``sm_XY`` is machine code for compute capability X.Y that also runs on X.Z for Z > Y
(the same major X); ``compute_XY`` is PTX, which the driver compiles at load time for any GPU of capability X.Y
or newer. Code for ``sm_XYa`` runs on X.Y alone, ``sm_XYf`` on the family X.Z with Z >= Y.

This module never imports torch at the top: Snakemake imports it on every command on a login node, where
``import torch`` costs seconds. :func:`installed_build` reads the build in a subprocess once per installation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlpipe.io import write_json

ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")

# PyPI's build of the pinned torch (requirements/torch.txt, CUDA 13) has kernels from compute capability 7.5 up.
# Older GPUs (Pitzer's V100s, 7.0) need PyTorch's CUDA 12.6 build of the same release, from PyTorch's own index.
PYPI_BUILD_OLDEST = (7, 5)
LEGACY_BUILD = "cu126"

# Run by this Python in a child process: the version and kernels of the torch it imports (with this mlpipe).
PROBE = (
    "import json, sys, torch; sys.path.insert(0, sys.argv[1]); from mlpipe.torch_build import kernel_arch_list; "
    "print(json.dumps([torch.__version__, kernel_arch_list(torch)]))"
)


class TorchBuildError(RuntimeError):
    """The installed PyTorch cannot be read; the message says what to do."""


Capability = tuple[int, int]


@dataclass(frozen=True)
class TorchBuild:
    version: str  # torch.__version__, with its local label (2.14.1+cu126)
    arch_list: tuple[str, ...]  # torch.cuda.get_arch_list(); empty for a CPU-only build

    def runs_on(self, capability: Capability) -> bool:
        """Whether some kernel of this build runs on a GPU of ``capability`` (major, minor)."""
        return any(arch_runs_on(arch, capability) for arch in self.arch_list)

    def describe(self) -> str:
        built_for = " ".join(self.arch_list) or "no GPU: a CPU-only build"
        return f"torch {self.version} (built for {built_for})"


def arch_runs_on(arch: str, capability: Capability) -> bool:
    """Whether code for ``arch`` (an entry of the arch list, e.g. sm_80) runs on a GPU of ``capability``."""
    match = ARCH.match(arch)
    if match is None:
        return False  # not NVIDIA code (e.g. a ROCm gfx target)
    kind, major, minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
    if suffix == "a":
        return capability == (major, minor)
    if kind == "compute":
        return capability >= (major, minor)
    return capability[0] == major and capability[1] >= minor


def format_capability(capability: Capability) -> str:
    return f"{capability[0]}.{capability[1]}"


def parse_capability(text: str | float) -> Capability:
    """``"7.0"`` -> (7, 0)."""
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def install_hint(capability: Capability) -> str:
    """The setup command that installs a build of the pinned release with kernels for ``capability``."""
    if capability >= PYPI_BUILD_OLDEST:
        return "install PyPI's build: make setup"
    return f"install PyTorch's CUDA 12.6 build: make setup TORCH_BUILD={LEGACY_BUILD}"


def kernel_arch_list(torch) -> list[str]:
    """The GPU architectures a build has kernels for, on a machine with or without a GPU.

    ``torch.cuda.get_arch_list()`` returns [] without a usable GPU on releases before 2.6 or so (it asks
    ``torch.cuda.is_available()`` first), which a login node would take for a CPU-only build; the list it
    reads is compiled into every CUDA build and readable there too.
    """
    arch_list = torch.cuda.get_arch_list()
    if not arch_list and torch.version.cuda:
        arch_list = torch._C._cuda_getArchFlags().split()
    return list(arch_list)


def current_build() -> TorchBuild:
    """The build of the torch this process runs (imports torch)."""
    import torch

    return TorchBuild(torch.__version__, tuple(kernel_arch_list(torch)))


def installed_build(cache_dir: Path) -> TorchBuild:
    """The build of the torch that this Python would import, without importing it here.

    Read once in a subprocess, then cached under ``cache_dir`` by what identifies the installation: its
    version, location and the dist-info RECORD (which lists every file with its hash).
    """
    try:
        distribution = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        raise TorchBuildError(f"torch is not installed for {sys.executable}: run make setup (see README)") from None
    record = distribution.read_text("RECORD") or ""
    identity = "\0".join([distribution.version, str(distribution.locate_file("")), record])
    cache = cache_dir / f"torch-build-{hashlib.sha256(identity.encode()).hexdigest()[:20]}.json"
    try:
        version, arch_list = json.loads(cache.read_text())
    except (OSError, ValueError):
        version, arch_list = probe()
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs the probe next time
            write_json(cache, [version, arch_list])
    return TorchBuild(version, tuple(arch_list))


def probe() -> tuple[str, list[str]]:
    """Import torch in a child process and read its version and arch list."""
    package_parent = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", PROBE, package_parent], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TorchBuildError(f"torch does not import for {sys.executable}: {last}")
    version, arch_list = json.loads(result.stdout)
    return version, arch_list


def cache_dir(environ: Mapping[str, str]) -> Path:
    """The user's cache folder for mlpipe ($XDG_CACHE_HOME/mlpipe, else ~/.cache/mlpipe)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "mlpipe"
