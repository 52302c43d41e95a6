"""`make setup`, `make run`, `make test`, `make lint` and the lock they install from (requirements/*.txt)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO, copy_workflow

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")


def lock(name: str) -> dict[str, str]:
    """A lock file as {package: its whole entry (pin, markers, hashes)}; every entry must carry hashes."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", (REPO / "requirements" / name).read_text()):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{name}: {match[1]} has no hash"
            entries[canonicalize_name(match[1])] = "\n".join(
                line for line in block.splitlines() if not line.lstrip().startswith("#")
            )
    return entries


def extra_requirements(requirement: Requirement) -> list[str]:
    """What the extras of ``requirement`` add (snakemake[reports]: pygments), from the installed package."""
    added = []
    for text in metadata.requires(requirement.name) or []:
        marker = Requirement(text).marker
        if marker and any(marker.evaluate({"extra": extra}) for extra in requirement.extras):
            added.append(text)
    return added


def pinned_version(entry: str) -> str:
    return PIN.match(entry)[2]


def make_dry_run(tmp_path: Path, target: str, *variables: str) -> list[str]:
    """The commands `make TARGET` would run for a new clone (no venv yet).

    Not as a sub-make of `make test`, which would print the directories it enters and pass its own flags on."""
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    environment = {name: value for name, value in os.environ.items() if name not in outer}
    result = subprocess.run(
        ["make", "--dry-run", target, f"VENV={tmp_path / '.venv'}", *variables],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [command for command in commands if command.startswith("pip install")]


def test_make_run_installs_what_running_needs_and_make_test_the_test_tools(tmp_path):
    run = installs(make_dry_run(tmp_path, "run"))
    assert run == [
        "pip install --quiet --require-hashes --no-deps -r requirements/run.txt",
        "pip install --quiet --require-hashes --no-deps -r requirements/torch.txt",
        "pip install --quiet --no-deps --no-build-isolation -e .",
    ]
    test = installs(make_dry_run(tmp_path, "test"))
    assert test == [*run, "pip install --quiet --require-hashes --no-deps -r requirements/test.txt"]
    lint = make_dry_run(tmp_path, "lint")
    assert lint[-4:] == ["snakemake --lint", "snakefmt --check Snakefile workflow", "ruff check", "ruff format --check"]


def test_pitzer_gets_pytorchs_cuda_12_6_build_of_the_pinned_release(tmp_path):
    torch = lock("torch.txt")
    versions = (
        f"torch=={pinned_version(torch['torch'])}+cu126 torchvision=={pinned_version(torch['torchvision'])}+cu126"
    )
    assert installs(make_dry_run(tmp_path, "setup", "TORCH_BUILD=cu126")) == [
        "pip install --quiet --require-hashes --no-deps -r requirements/run.txt",
        f"pip install --quiet --index-url https://download.pytorch.org/whl/cu126 {versions}",
        "pip install --quiet --no-deps --no-build-isolation -e .",
    ]
    # The README's table says the same, for a user who installs by hand.
    readme = (REPO / "README.md").read_text()
    assert f"`pip install --index-url https://download.pytorch.org/whl/cu126 {versions}`" in readme


def test_later_make_commands_keep_the_build_the_venv_was_set_up_with(tmp_path):
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".built-with-torch-cu126").touch()  # as `make setup TORCH_BUILD=cu126` leaves it
    assert installs(make_dry_run(tmp_path, "test")) == [
        "pip install --quiet --require-hashes --no-deps -r requirements/test.txt"
    ]
    assert "requirements/torch.txt" in " ".join(installs(make_dry_run(tmp_path, "setup", "TORCH_BUILD=pypi")))


def test_the_lock_pins_every_requirement_of_pyproject_with_hashes():
    run, test, torch = lock("run.txt"), lock("test.txt"), lock("torch.txt")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def pinned_in(entries: dict[str, str], requirements: list[str]) -> list[str]:
        """The requirements that ``entries`` leave out or pin outside their range, the extras' own included."""
        missing = []
        for text in requirements:
            requirement = Requirement(text)
            entry = entries.get(canonicalize_name(requirement.name))
            if entry is None or not requirement.specifier.contains(pinned_version(entry), prereleases=True):
                missing.append(text)
            missing += pinned_in(entries, extra_requirements(requirement))
        return missing

    assert pinned_in(run | torch, project["dependencies"]) == []
    assert pinned_in(run, ["snakemake[reports]"]) == []  # make run ends with snakemake --report
    assert pinned_in(test | torch, project["dependencies"] + extras["test"] + extras["lint"]) == []
    # Running needs no test tool; the test lock holds the run lock whole (same versions, same hashes).
    assert not {"pytest", "selenium", "mlflow-skinny", "wandb", "ruff", "snakefmt"} & set(run)
    assert {name: test.get(name) for name in run} == run
    # torch and what only it needs are in torch.txt alone; what they share with the rest is pinned alike.
    assert not {"torch", "torchvision", "triton"} & (set(run) | set(test))
    shared = set(torch) & set(test)
    assert shared and all(torch[name] == test[name] for name in shared)


def test_torch_is_pinned_as_the_lock_input_says():
    lines = (REPO / "requirements" / "torch.in").read_text().splitlines()
    wanted = [PIN.match(line).groups() for line in lines if PIN.match(line)]
    torch = lock("torch.txt")
    assert (
        [(name, pinned_version(torch[name])) for name, _ in wanted]
        == wanted
        == [
            ("torch", "2.14.1"),  # the last release with a CUDA 12.6 build (Pitzer's V100s)
            ("torchvision", "0.29.1"),
        ]
    )


def test_the_readme_names_every_package_ci_installs_for_the_slurm_and_browser_tests():
    ci = (REPO / ".ci" / "run").read_text()
    installed = set(re.search(r"apt-get install -y -qq --no-install-recommends \\\n(.*?) >", ci, re.S)[1].split())
    readme = " ".join((REPO / "README.md").read_text().split())
    named = re.search(r"The SLURM tests need Debian's `([^`]*)` and root, the report test `([^`]*)`", readme)
    assert named, "the README's Development section no longer names the test packages this way"
    assert set(named[1].split()) | set(named[2].split()) == installed - {"make"}


STUB_MAKE = """#!/usr/bin/env bash
echo "$*" >> "$MAKE_CALLS"
if [ "$1" = run ] && [ "$WRITE_REPORT" = 1 ]; then mkdir -p results && echo '<html>' > results/report.html; fi
"""


def run_ci(tmp_path: Path, write_report: bool) -> tuple[subprocess.CompletedProcess, list[str]]:
    """.ci/run in a clean checkout, with `apt-get` and `make` stood in for by stubs that record their calls."""
    checkout = copy_workflow(tmp_path / "checkout")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("apt-get", "#!/bin/sh\nexit 0\n"), ("make", STUB_MAKE)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    calls = tmp_path / "make-calls"
    calls.touch()
    environment = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "MAKE_CALLS": str(calls),
        "WRITE_REPORT": "1" if write_report else "0",
    }
    result = subprocess.run(
        ["bash", str(checkout / ".ci" / "run")], env=environment, capture_output=True, text=True, timeout=60
    )
    return result, calls.read_text().splitlines()


def test_ci_runs_the_readmes_first_command_and_fails_without_the_report(tmp_path):
    result, calls = run_ci(tmp_path / "good", write_report=True)
    assert result.returncode == 0, result.stderr
    assert calls == ["run", "lint", "test"]
    result, calls = run_ci(tmp_path / "no-report", write_report=False)
    assert result.returncode != 0 and calls == ["run"]
    assert "make run finished without writing results/report.html" in result.stderr
