"""The READMEs' commands are a contract: every `snakemake` and `make` command they show works as shown.

Commands are the lines of their shell blocks and the `snakemake ...` spans of their text. Each runs in a copy of a
finished study in its dry-run form (`snakemake ... -n`, `make -n ...`), so nothing is trained or submitted; a command
that is already a dry run or draws a graph runs as written. Profile commands get the environment a user on OSC sets
(an account, a scratch folder). A local command that would run jobs must say how many cores (Snakemake stops
without), which a dry run alone would not notice.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, job_env

README_FILES = ("README.md", "config/README.md")
NO_DRY_RUN_NEEDED = {"-n", "--dry-run", "--dag", "--rulegraph", "--summary", "--lint", "--unlock", "--list-changes"}


def shell_commands() -> list[tuple[str, str]]:
    """(file, command) for every snakemake or make command shown, comments, pipes and redirects cut off, each once."""
    commands = []
    for name in README_FILES:
        text = (REPO / name).read_text()
        lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
        spans = re.findall(r"(?<!`)`(snakemake[^`]*)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for line in [*lines, *spans]:
            command = line.split(" #")[0].split("|")[0].split(" > ")[0].strip()  # no comment, pipe or redirect
            shown = command.split(" ")[0] in ("snakemake", "make") and " " in command  # not the bare name
            if shown and "..." not in command and "<" not in command and (name, command) not in commands:
                commands.append((name, command))
    return commands


COMMANDS = shell_commands()


@pytest.fixture(scope="module")
def study(finished_workflow, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("readme") / "project"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    return workdir


def test_the_readmes_show_commands():
    assert len(COMMANDS) > 20 and ("README.md", "snakemake -n") in COMMANDS


@pytest.mark.parametrize("source, command", COMMANDS, ids=[command for _, command in COMMANDS])
def test_each_readme_command_works_in_its_dry_run_form(study, tmp_path, source, command):
    words = shlex.split(command)
    if words[0] == "make":
        run = ["make", "-n", *words[1:]]
    else:
        executes = not (NO_DRY_RUN_NEEDED & set(words) or "--report" in words)
        if executes and "--profile" not in words:
            assert {"--cores", "-c", "--jobs", "-j"} & set(words), f"{source}: `{command}` needs --cores to run"
        dry = ["-n"] if executes else []
        run = [sys.executable, "-m", "snakemake", *words[1:], *dry]
        for index, word in enumerate(words[:-1]):
            if word == "--configfile" and not (study / words[index + 1]).exists():
                (study / words[index + 1]).parent.mkdir(parents=True, exist_ok=True)
                (study / words[index + 1]).write_text("train: {epochs: 2}\n")  # a user's override file
    # A user on Cardinal: this machine's PyTorch (PyPI's CUDA 13 build) has no kernels for Pitzer's V100s.
    environment = job_env() | {
        "OSC_ACCOUNT": "PAS1234",
        "OSC_CLUSTER": "cardinal",
        "OSC_SCRATCH": str(tmp_path / "scratch"),
    }
    result = subprocess.run(run, cwd=study, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{source}: `{command}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
