"""The lab's own classes, named in the config by reference: a model (``train.model``) or a Dataset
(``dataset.custom.class``).

A reference is ``path/to/file.py:ClassName`` (a file of the project, relative to the working directory, which is
the workflow folder for Snakemake and its jobs) or ``package.module:ClassName`` (a module Python can import; a
package folder in the workflow folder counts).

Three uses, each cheap where it runs:
- parse time (every ``snakemake`` command): :func:`check_reference` reads the file with ``ast`` (no import, no
  torch): the file exists, has no syntax error, defines the class, and what its ``__init__`` accepts;
- rule parameters and the resume fingerprint: the checksum of the file and of the project files it imports
  (:mod:`mlpipe.user_sources`), so editing them reruns the jobs that run them (and only those);
- jobs: :func:`load_class` imports the file with its own folder and the folders above it (up to the workflow
  folder) on ``sys.path``, so a guide-style project's ``from src.models.layers import Block`` works, and
  :func:`construct` builds it, turning arguments its constructor rejects into one line.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REFERENCE = re.compile(r"^(?P<source>[^:\s]+):(?P<name>[A-Za-z_]\w*)$")
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
PACKAGE_DIR = Path(__file__).resolve().parent
FORMS = "path/to/file.py:ClassName (relative to the workflow folder) or package.module:ClassName"


class UserCodeError(ValueError):
    """A reference to the lab's code that cannot be used; the message is one line. ``argument``: the
    constructor argument at fault, if one is."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


@dataclass(frozen=True)
class Reference:
    source: str  # a .py file path, or a dotted module name
    class_name: str

    @property
    def is_file(self) -> bool:
        return self.source.endswith(".py")

    def __str__(self) -> str:
        return f"{self.source}:{self.class_name}"


@dataclass(frozen=True)
class Parameters:
    """What a constructor accepts by keyword, as far as the source says."""

    names: tuple[str, ...]  # parameters that can be passed by keyword
    required: tuple[str, ...]  # of those, the ones without a default
    takes_any: bool  # it has **kwargs


def parse_reference(text: str) -> Reference | None:
    """The reference ``text`` spells, or None when it is not shaped like one (a built-in name)."""
    match = REFERENCE.match(text)
    if not match:
        return None
    source = match["source"]
    if not source.endswith(".py") and not MODULE_NAME.match(source):
        return None
    return Reference(source, match["name"])


def check_reference(reference: Reference) -> Parameters | None:
    """Check, without importing anything, that ``reference`` names a class; return what its ``__init__`` takes.

    None when the source does not say (an inherited or generated ``__init__``, a compiled module).
    """
    path = source_file(reference)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as error:
        raise UserCodeError(f"{path} line {error.lineno}: {error.msg}") from None
    definitions = [node for node in _top_level(tree.body) if _binds(node, reference.class_name)]
    if not definitions:
        if any(isinstance(node, ast.ImportFrom) and node.names[0].name == "*" for node in _top_level(tree.body)):
            return None  # a star import may bring it
        raise UserCodeError(f"{path} defines no {reference.class_name}")
    definition = definitions[-1]
    if isinstance(definition, ast.FunctionDef) and not definition.decorator_list:
        return _parameters(definition.args, method=False)  # a factory function works like a class
    if not isinstance(definition, ast.ClassDef) or definition.decorator_list:
        return None
    init = next(
        (node for node in definition.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"), None
    )
    return None if init is None else _parameters(init.args, method=True)


def source_file(reference: Reference) -> Path:
    """The file that defines the reference's module; a missing file or module is an error naming it."""
    if reference.is_file:
        path = Path(reference.source)
        if not path.is_file():
            raise UserCodeError(f"no such file {reference.source} (relative to the workflow folder {Path.cwd()})")
        return path
    path = _module_file(reference.source)
    if path is None:
        raise UserCodeError(
            f"no module {reference.source} (not installed, and no {reference.source.replace('.', '/')}.py "
            "in the workflow folder)"
        )
    return path


def check_arguments(reference: Reference, parameters: Parameters | None, given: list[str], key: str) -> None:
    """Refuse keywords the constructor does not take, and required parameters nobody passes.

    ``given`` are the keyword names the constructor will get; ``key`` names the config key that sets the others.
    """
    if parameters is None:
        return
    if not parameters.takes_any:
        unknown = [name for name in given if name not in parameters.names]
        if unknown:
            raise UserCodeError(
                f"{reference.class_name} takes no argument {', '.join(map(repr, unknown))}; "
                f"its parameters: {', '.join(parameters.names) or 'none'}",
                unknown[0],
            )
    missing = [name for name in parameters.required if name not in given]
    if missing:
        raise UserCodeError(
            f"{reference.class_name} needs {', '.join(map(repr, missing))}; set {key}.{missing[0]} in the config",
            missing[0],
        )


def search_path(reference: Reference) -> list[Path]:
    """Folders the referenced code imports from: a file's own folder and those above it up to the working
    directory; for a module, the working directory (so a package folder there imports as one)."""
    cwd = Path.cwd().resolve()
    if not reference.is_file:
        return [cwd]
    folder = Path(reference.source).resolve().parent
    if not folder.is_relative_to(cwd):
        return [folder]
    return [folder, *[parent for parent in folder.parents if parent.is_relative_to(cwd)]]


def load_class(reference: Reference, key: str):
    """Import the referenced module (a file under a module name of its path) and return the class."""
    source_file(reference)  # a clear error for a missing file or module
    for folder in map(str, search_path(reference)):
        if folder not in sys.path:
            sys.path.append(folder)  # after the environment's own entries: never shadows an installed package
    module = _import_file(Path(reference.source)) if reference.is_file else importlib.import_module(reference.source)
    try:
        return getattr(module, reference.class_name)
    except AttributeError:
        raise UserCodeError(f"{key}: {reference.source} defines no {reference.class_name}") from None


def construct(cls, kwargs: dict, key: str):
    """``cls(**kwargs)``; arguments its signature rejects are one line naming ``key``, before the call."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a builtin or extension type: let the call say
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as error:
            called = ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
            raise UserCodeError(f"{key}: {cls.__name__}({called}) is refused: {error}") from None
    return cls(**kwargs)


def accepts(cls, name: str) -> bool:
    """Whether ``cls``'s constructor has a parameter called ``name``."""
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def takes_any_keyword(cls) -> bool:
    """Whether ``cls``'s constructor takes ``**kwargs`` (or its signature cannot be read, so it might)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)


def _import_file(path: Path):
    """Import a file as the module its path names (``src/models/model.py`` -> ``src.models.model``), so that
    its relative imports work; a path that is no module name gets a private one."""
    resolved = path.resolve()
    relative = resolved.relative_to(Path.cwd().resolve()) if resolved.is_relative_to(Path.cwd().resolve()) else None
    dotted = ".".join(relative.with_suffix("").parts) if relative else ""
    name = dotted if MODULE_NAME.match(dotted) else f"mlpipe_user_{hashlib.sha256(bytes(resolved)).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, found like an import would but without running any package's
    ``__init__`` (``find_spec`` of a submodule imports its parents: ``torchvision.datasets`` would import torch)."""
    top, *rest = name.split(".")
    cwd = str(Path.cwd().resolve())
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(cwd)
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])]
    for index, part in enumerate(rest):
        last = index == len(rest) - 1
        for folder in folders:
            if last and (folder / f"{part}.py").is_file():
                return folder / f"{part}.py"
            if (folder / part).is_dir():
                if last:
                    init = folder / part / "__init__.py"
                    return init if init.is_file() else None
                folders = [folder / part]
                break
        else:
            return None
    return None


def _top_level(body: list[ast.stmt]):
    """The module's statements, also those under a top-level ``if``, ``try`` or ``with`` (not in functions)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try | ast.With):
            for branch in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from _top_level(branch)
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


def _binds(node: ast.stmt, name: str) -> bool:
    """Whether ``node`` binds ``name``: a class, a function, an assignment, an import."""
    if isinstance(node, ast.ClassDef | ast.FunctionDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names)
    return False


def _parameters(arguments: ast.arguments, method: bool) -> Parameters:
    positional = [*arguments.posonlyargs, *arguments.args]
    defaulted = positional[len(positional) - len(arguments.defaults) :] if arguments.defaults else []
    if method:
        positional = positional[1:]  # self
    keyword = [arg for arg in positional if arg not in arguments.posonlyargs]
    required = [arg.arg for arg in positional if arg not in defaulted]
    required += [arg.arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None]
    return Parameters(
        names=tuple(arg.arg for arg in [*keyword, *arguments.kwonlyargs]),
        required=tuple(required),
        takes_any=arguments.kwarg is not None,
    )
