"""The code checksum each rule carries: complete (every module its script imports) and content-based."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_workflow
from mlpipe.rule_code import PACKAGE_DIR, RULE_CODE, SCRIPTS_DIR, rule_sources


def mlpipe_imports(source: Path, seen: set[Path]) -> set[Path]:
    """The mlpipe modules ``source`` imports, directly or through other mlpipe modules (wherever the import is)."""
    for node in ast.walk(ast.parse(source.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlpipe"):
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("mlpipe")]
        for name in names:
            parts = name.split(".")[1:]
            for candidate in (
                PACKAGE_DIR.joinpath(*parts).with_suffix(".py"),
                PACKAGE_DIR.joinpath(*parts, "__init__.py"),
            ):
                if candidate.is_file() and candidate not in seen:
                    seen.add(candidate)
                    mlpipe_imports(candidate, seen)
    return seen


@pytest.mark.parametrize("rule", RULE_CODE)
def test_each_rule_covers_every_module_its_script_imports(rule):
    imported = mlpipe_imports(SCRIPTS_DIR / f"{rule}.py", set())
    missing = sorted(str(path.relative_to(PACKAGE_DIR)) for path in imported - set(rule_sources(rule)))
    assert missing == [], f"rule {rule} runs modules its checksum leaves out: {missing}"


def checksum(workdir: Path, rule: str) -> str:
    command = [sys.executable, "-c", f"from mlpipe.rule_code import rule_code; print(rule_code({rule!r}))"]
    env = {"PYTHONPATH": str(workdir / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_the_checksum_follows_content_not_file_times(tmp_path):
    workdir = copy_workflow(tmp_path / "copy")
    before = checksum(workdir, "plot")
    plots = workdir / "src" / "mlpipe" / "analysis" / "plots.py"
    plots.touch()
    assert checksum(workdir, "plot") == before  # a touch, or a checkout back and forth, changes nothing
    plots.write_text(plots.read_text() + "\n# an edit\n")
    assert checksum(workdir, "plot") != before
    assert checksum(workdir, "train") == checksum(REPO, "train")  # other rules are not affected
