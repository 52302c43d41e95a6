"""Atomic file writes and small JSON/CSV/YAML helpers shared by every stage.

Every output goes through :func:`atomic_path`: it is written under a temporary name in
the same directory and renamed into place only when complete, so a crash, a failed
job or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The temp name keeps the final suffix: np.save and gzip-by-suffix writers look at it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; lab members sharing a project folder need the umask's mode
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


class YamlSyntaxError(ValueError):
    """A YAML file that does not parse, or writes a key twice; the message names the file, line and column."""


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; a syntax error or a key written twice in one mapping is one line naming the file and
    where (PyYAML's own messages span several, and PyYAML keeps the later of two equal keys without a word)."""
    import yaml

    try:
        return yaml.load(Path(path).read_text(), Loader=_strict_loader())
    except yaml.MarkedYAMLError as error:
        mark, context = error.problem_mark, error.context
        opened = f" ({context} on line {error.context_mark.line + 1})" if context and error.context_mark else ""
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}"
        raise YamlSyntaxError(f"{where}: {error.problem}{opened}") from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None


@functools.cache
def _strict_loader():
    """PyYAML's safe loader, refusing a key that a mapping already has (merge keys ``<<`` aside)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                first_lines: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = first_lines.get(key)
                        first_lines.setdefault(key, key_node.start_mark.line + 1)
                    except TypeError:  # an unhashable key: PyYAML's own error follows
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key!r} is written twice (first on line {first}); YAML would keep the later "
                            "silently: remove one",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep)

    return StrictLoader


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
