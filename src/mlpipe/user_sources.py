"""Which files make up a lab's code behind a reference, and their checksum.

The referenced file and, followed through their ``import`` statements (read with ``ast``, nothing is imported),
the files of the project it imports: a guide-style ``src/models/model.py`` that imports ``src/models/layers.py``
is retrained when either changes. mlpipe's own modules are left out (each rule already carries their checksum),
and so are installed packages (``site-packages``): the project's code is what a lab edits between runs.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from mlpipe.user_code import PACKAGE_DIR, Reference, UserCodeError, parse_reference, search_path, source_file

INSTALLED = {"site-packages", "dist-packages"}


def source_checksum(text: str) -> str:
    """A short checksum of the project files behind a reference ('' for a built-in name); changes exactly when
    the referenced file, or a file of the project it imports, does."""
    reference = parse_reference(text)
    if reference is None:
        return ""
    try:
        files = source_files(reference)
    except UserCodeError:
        return ""  # reported by the config check
    if not files:
        return ""  # mlpipe's own or an installed package's
    cwd = Path.cwd().resolve()
    digest = hashlib.sha256()
    for path in files:  # named relative to the workflow folder: a copy of the workflow keeps its checksums
        name = path.relative_to(cwd) if path.is_relative_to(cwd) else path
        digest.update(name.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def source_parameter(text: str) -> str:
    """The checksum of :func:`source_checksum` as a rule parameter, labelled with the reference (as
    :func:`mlpipe.rule_code.rule_code` is), so that Snakemake's rerun reason names the lab's code that changed;
    '' for a built-in."""
    checksum = source_checksum(text)
    return f"code of {text}: {checksum}" if checksum else ""


def source_files(reference: Reference) -> list[Path]:
    """The referenced file and the files of its project it imports, directly or not, sorted.

    mlpipe's own modules are left out (each rule already carries their checksum), and so are installed packages.
    """
    start = source_file(reference).resolve()
    if _installed(start) or start.is_relative_to(PACKAGE_DIR):
        return []
    roots = search_path(reference)
    found: set[Path] = set()
    pending = [start]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        try:
            tree = ast.parse(path.read_bytes())
        except SyntaxError:
            continue  # the config check reports the referenced file; an imported one fails when it runs
        for module in _imported_modules(tree, path):
            for candidate in _module_candidates(module, roots):
                if not (_installed(candidate) or candidate.is_relative_to(PACKAGE_DIR) or candidate in found):
                    pending.append(candidate)
    return sorted(found)


def _imported_modules(tree: ast.Module, path: Path) -> list[tuple[str, Path | None]]:
    """Every import in ``tree`` as (dotted name, folder it is relative to, or None for an absolute import)."""
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = None
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
            prefix = node.module or ""
            modules.append((prefix, base))
            modules += [(f"{prefix}.{alias.name}".lstrip("."), base) for alias in node.names]
    return modules


def _module_candidates(module: tuple[str, Path | None], roots: list[Path]) -> list[Path]:
    """The files an import would run: the module (or package ``__init__``) and the packages above it."""
    name, base = module
    parts = [part for part in name.split(".") if part]
    files = []
    for root in [base] if base is not None else roots:
        for depth in range(1, len(parts) + 1):
            folder = root.joinpath(*parts[:depth])
            for candidate in (folder.with_suffix(".py"), folder / "__init__.py"):
                if candidate.is_file():
                    files.append(candidate.resolve())
    if base is not None and not parts and (base / "__init__.py").is_file():
        files.append((base / "__init__.py").resolve())
    return files


def _installed(path: Path) -> bool:
    return not INSTALLED.isdisjoint(path.parts)
