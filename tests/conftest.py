"""Shared fixtures: a copy of the workflow in a temp folder, and a way to run real Snakemake in it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON_BIN = Path(sys.executable).parent

# The suite checks what processes on the CPU and outside SLURM do (bit-identical resumes, gloo with two
# processes, a GPU job that sees no GPU): on a GPU node, or inside an allocation, its processes see neither the
# GPUs nor the allocation. tests/test_gpu.py gives the GPUs back to processes of its own.
HOST_GPUS = os.environ.get("CUDA_VISIBLE_DEVICES")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
for name in [name for name in os.environ if name.startswith("SLURM_")]:
    del os.environ[name]

# SLURM's client tools are installed here for the SLURM tests, but outside them no controller answers, and the
# SLURM executor plugin runs `scontrol show config` whenever Snakemake starts: with no controller it waits for
# its 10 s timeout, in every `snakemake` the suite runs. A config whose controller refuses at once lets Snakemake
# start as on a machine without SLURM; the tests on the local cluster give each process the cluster's SLURM_CONF.
NO_CONTROLLER_CONF = Path(tempfile.gettempdir()) / "mlpipe-tests-no-slurm-controller.conf"
if not NO_CONTROLLER_CONF.exists():
    with tempfile.NamedTemporaryFile("w", dir=NO_CONTROLLER_CONF.parent, delete=False) as conf:
        conf.write(
            "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nMessageTimeout=1\n"
            "NodeName=localhost CPUs=1\nPartitionName=none Nodes=localhost\n"
        )
    os.replace(conf.name, NO_CONTROLLER_CONF)
os.environ["SLURM_CONF"] = str(NO_CONTROLLER_CONF)

# The default config cut down so that an end-to-end run takes seconds: 2 runs of 3 epochs.
SMALL_CONFIG_OVERRIDES = {
    "train": {"epochs": 3},
    "sweep": {"grid": {"lr": [0.05, 0.1]}, "seeds": [0]},
}
# The finished study most tests look at: 2 learning rates x 2 seeds, so seed statistics exist.
STUDY_OVERRIDES = {
    "train": {"epochs": 3},
    "sweep": {"grid": {"lr": [0.05, 0.1]}, "seeds": [0, 1]},
}
STUDY_RUN_IDS = ["lr-0.05_seed-0", "lr-0.05_seed-1", "lr-0.1_seed-0", "lr-0.1_seed-1"]


def repo_files() -> list[str]:
    """Files of the checkout that a fresh clone would have (tracked, or new and not ignored)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (REPO / name).is_file()]


def copy_workflow(destination: Path) -> Path:
    for name in repo_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination


def deep_update(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def edit_config(workdir: Path, overrides: dict) -> dict:
    """Apply ``overrides`` to the copy's config/config.yaml (as a user editing it would)."""
    path = workdir / "config" / "config.yaml"
    config = deep_update(yaml.safe_load(path.read_text()), overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


# Root writes anywhere, whatever the permission bits, through the capabilities CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH; a process started under this prefix (util-linux's setpriv) has neither, on any filesystem.
WITHOUT_ROOTS_OVERRIDE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
]


@contextlib.contextmanager
def unwritable_folder(folder: Path) -> Iterator[list[str]]:
    """``folder`` without write permission, and the prefix for a command that then cannot create anything in it,
    also when the tests run as root (empty for other users)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        yield WITHOUT_ROOTS_OVERRIDE if os.geteuid() == 0 else []
    finally:
        folder.chmod(0o755)


def job_env() -> dict:
    """The environment of a user with the venv activated: `python` in rule commands is this one.

    (Inside the workflow each job's PYTHONPATH points at its own copy's package; see common.smk.)"""
    env = dict(os.environ)
    env["PATH"] = f"{PYTHON_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO / "src")  # scripts run directly import this checkout's package
    return env


def train_command(run_dir: Path, processed: Path, hparams_json: str, *extra: str) -> list[str]:
    """scripts/train.py as the train rule runs it: outputs in ``run_dir/out``, state in ``run_dir/state``."""
    out = run_dir / "out"
    return [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        "--run-id",
        run_dir.name,
        "--hparams",
        hparams_json,
        "--processed-dir",
        str(processed),
        *("--metrics", str(out / "metrics.csv"), "--best", str(out / "best.pt"), "--last", str(out / "last.pt")),
        *("--run-config", str(out / "run_config.json"), "--run-dir", str(out)),
        "--state-dir",
        str(run_dir / "state"),
        *extra,
    ]


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=job_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, as {rule: count}, read from Snakemake's job-stats table."""
    output = snakemake(workdir, "--dry-run", "--quiet", "rules", *args).stdout
    jobs, in_table = {}, False
    for line in output.splitlines():
        fields = line.split()
        if fields[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(fields) == 2 and fields[1].isdigit() and fields[0] != "total":
            jobs[fields[0]] = int(fields[1])
    return jobs


@pytest.fixture(scope="session")
def finished_workflow(tmp_path_factory) -> Path:
    """The real workflow, run once to completion on a small study (2 learning rates x 2 seeds).

    Tests only read it. Under pytest-xdist the workers share one copy: the first to get the lock builds it.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder above every worker's own
    workdir, built = shared / "finished-study", shared / "finished-study.built"
    with (shared / "finished-study.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a build that failed in another worker
            copy_workflow(workdir)
            edit_config(workdir, STUDY_OVERRIDES)
            snakemake(workdir, "--cores", "2")
            built.touch()
    return workdir


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """A fresh copy of the workflow (not yet run) on the small config."""
    workdir = copy_workflow(tmp_path / "workflow")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES)
    return workdir


def private_copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of a finished workflow for one test to change, outputs and Snakemake metadata included."""
    destination = tmp_path / "finished"
    shutil.copytree(finished, destination, symlinks=True)
    return destination


@pytest.fixture
def finished_copy(finished_workflow, tmp_path) -> Path:
    """A private copy of the finished workflow."""
    return private_copy(finished_workflow, tmp_path)


@pytest.fixture
def lab_project(tmp_path, monkeypatch) -> Path:
    """An empty folder as the working directory, where a test writes a lab's own code; what it imports is forgotten
    afterwards (a lab's files are imported by their path's module name, which another test reuses)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    lab_modules = [
        name
        for name, module in list(sys.modules.items())
        if any(Path(place).is_relative_to(tmp_path) for place in module_places(module))
    ]
    for name in lab_modules:  # after the search: a namespace package's folders are looked up through its parent
        del sys.modules[name]


def module_places(module) -> list[str]:
    """Where a module comes from: its file, and for a (namespace) package its folders."""
    places = [module.__file__] if getattr(module, "__file__", None) else []
    folders = getattr(module, "__path__", None)
    if isinstance(folders, list) or type(folders).__name__ == "_NamespacePath":
        places += list(folders)
    return places


@pytest.fixture(scope="session")
def processed_digits(tmp_path_factory) -> Path:
    """The built-in dataset, downloaded and preprocessed once for the tests that train or evaluate on it."""
    from mlpipe.download.stage import download_dataset
    from mlpipe.preprocess.stage import preprocess_dataset

    root = tmp_path_factory.mktemp("digits")
    download_dataset({"name": "digits"}, root / "raw")
    preprocess_dataset(root / "raw", root / "processed", {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0})
    return root / "processed"


@pytest.fixture
def osc_workflow(tmp_path) -> Path:
    """A fresh copy of the workflow on the small config, whose train jobs ask a site for 1 GPU, 30 min, 1,500 MB."""
    workdir = copy_workflow(tmp_path / "project")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES | {"train_job": {"gpus": 1, "runtime": 30, "mem_mb": 1500}})
    return workdir
