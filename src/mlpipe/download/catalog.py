"""What each downloadable dataset is: its files, their published checksums and where they live.

The built-in entries take torchvision's knowledge of each dataset (official URLs and mirrors, file
lists, MD5 checksums, formats), so they stay what torchvision verifies. A lab can add datasets in a
supported format, or replace an entry (a repackaged archive on its own server), with a catalogue
file named by ``dataset.catalog``:

    my_cifar:
      format: cifar            # cifar or idx
      files: [{filename: my-cifar.tar.gz, md5: "0123...", urls: [https://lab.example/data/my-cifar.tar.gz]}]
      splits: {train: [extracted/my-cifar/data_batch_1], test: [extracted/my-cifar/test_batch]}
      label_key: labels
      meta: {file: extracted/my-cifar/batches.meta, key: label_names}

Paths in ``splits`` and ``meta`` are relative to the dataset's raw folder; archives are extracted
into its ``extracted/`` subfolder. An entry named like a built-in dataset replaces only the keys it
gives, e.g. ``cifar10: {files: [{filename: cifar-10-python.tar.gz, md5: ...}]}`` for a repackaged
archive (the built-in URLs stay unless ``urls`` is given). Each md5 is 32 hexadecimal characters, in
quotes (unquoted, one made of digits only is a number to YAML); the file is checked when the config is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlpipe.io import YamlSyntaxError, read_yaml

BUILTIN_DOWNLOADS = ("cifar10", "cifar100", "mnist", "fashion_mnist")
LOCAL_SOURCES = ("digits", "image_folder", "custom")  # built into a wheel, the user's own folder or Dataset class
FORMATS = ("cifar", "idx")
EXTRACTED = "extracted"
MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    md5: str
    urls: tuple[str, ...]

    @property
    def is_archive(self) -> bool:
        return self.filename.endswith((".tar.gz", ".tgz", ".tar"))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str
    files: tuple[RemoteFile, ...]
    splits: dict
    classes: tuple[str, ...] = ()  # empty: read from the data (CIFAR's meta file)
    label_key: str = "labels"
    meta: dict = field(default_factory=dict)

    def manifest(self, classes: list[str]) -> dict:
        """The raw folder's manifest: everything preprocess needs to read it."""
        return {
            "dataset": self.name,
            "format": self.format,
            "classes": classes,
            "splits": self.splits,
            "label_key": self.label_key,
            "files": {remote.filename: remote.md5 for remote in self.files},
        }


def dataset_names(catalog_file: str | Path | None = None) -> tuple[str, ...]:
    names = [*LOCAL_SOURCES, *BUILTIN_DOWNLOADS]
    if catalog_file:
        names += [name for name in _read_catalog(catalog_file) if name not in names]
    return tuple(names)


def dataset_spec(name: str, catalog_file: str | Path | None = None) -> DatasetSpec:
    """The built-in entry for ``name``, with what a catalogue entry of the same name replaces."""
    entry = _read_catalog(catalog_file).get(name) if catalog_file else None
    builders = {"cifar10": _cifar, "cifar100": _cifar, "mnist": _mnist, "fashion_mnist": _mnist}
    if name in builders:
        spec = builders[name](name)
        return _spec_from_entry(name, entry, catalog_file, base=spec) if entry else spec
    if entry:
        return _spec_from_entry(name, entry, catalog_file)
    raise ValueError(f"dataset.name: {name!r} has no download; downloadable: {', '.join(BUILTIN_DOWNLOADS)}")


def _cifar(name: str) -> DatasetSpec:
    from torchvision.datasets import CIFAR10, CIFAR100

    source = CIFAR10 if name == "cifar10" else CIFAR100
    folder = f"{EXTRACTED}/{source.base_folder}"
    return DatasetSpec(
        name=name,
        format="cifar",
        files=(RemoteFile(source.filename, source.tgz_md5, (source.url,)),),
        splits={
            "train": [f"{folder}/{member}" for member, _ in source.train_list],
            "test": [f"{folder}/{member}" for member, _ in source.test_list],
        },
        label_key="labels" if name == "cifar10" else "fine_labels",
        meta={"file": f"{folder}/{source.meta['filename']}", "key": source.meta["key"]},
    )


def _mnist(name: str) -> DatasetSpec:
    from torchvision.datasets import MNIST, FashionMNIST

    source = MNIST if name == "mnist" else FashionMNIST
    files = tuple(
        RemoteFile(filename, md5, tuple(mirror + filename for mirror in source.mirrors))
        for filename, md5 in source.resources
    )

    def named(prefix: str) -> str:
        return next(remote.filename for remote in files if remote.filename.startswith(prefix))

    return DatasetSpec(
        name=name,
        format="idx",
        files=files,
        splits={
            "train": {"images": named("train-images"), "labels": named("train-labels")},
            "test": {"images": named("t10k-images"), "labels": named("t10k-labels")},
        },
        classes=tuple(source.classes),
    )


def _read_catalog(catalog_file: str | Path) -> dict:
    path = Path(catalog_file)
    if not path.is_file():
        raise ValueError(f"dataset.catalog: no such file {path}")
    try:
        entries = read_yaml(path) or {}
    except YamlSyntaxError as error:
        raise ValueError(f"dataset.catalog: {error}") from None
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise ValueError(f"dataset.catalog: {path} must map dataset names to entries")
    for name, entry in entries.items():  # checked on reading, so a bad checksum stops before any download
        _remote_files(entry.get("files", []), f"dataset.catalog {path}, entry {name!r}")
    return entries


def _spec_from_entry(name: str, entry: dict, catalog_file: str | Path, base: DatasetSpec | None = None) -> DatasetSpec:
    """A spec from a catalogue entry; over a built-in ``base`` the entry replaces only the keys it has.

    A replaced file keeps the built-in URLs unless the entry gives its own.
    """
    where = f"dataset.catalog {catalog_file}, entry {name!r}"
    inherited = {
        "format": base.format if base else None,
        "splits": base.splits if base else None,
        "classes": base.classes if base else (),
        "label_key": base.label_key if base else "labels",
        "meta": base.meta if base else {},
    }
    values = inherited | entry
    base_urls = {remote.filename: remote.urls for remote in base.files} if base else {}
    files = base.files if base and "files" not in entry else _remote_files(entry["files"], where, base_urls)
    if values["format"] not in FORMATS:
        raise ValueError(f"{where}: format must be one of {', '.join(FORMATS)}, got {values['format']!r}")
    if not values["splits"]:
        raise ValueError(f"{where}: splits is missing")
    return DatasetSpec(
        name=name,
        format=values["format"],
        files=files,
        splits=values["splits"],
        classes=tuple(values["classes"]),
        label_key=values["label_key"],
        meta=values["meta"],
    )


def _remote_files(items: list, where: str, base_urls: dict | None = None) -> tuple[RemoteFile, ...]:
    """A catalogue entry's ``files``, each md5 checked; a file keeps ``base_urls`` (built-in) unless it has its own."""
    files = []
    try:
        for index, item in enumerate(items):
            md5 = item["md5"]
            if not isinstance(md5, str) or not MD5_HEX.fullmatch(md5):
                problem = f"{where}: files[{index}].md5 {md5!r} is not 32 hexadecimal characters"
                if isinstance(md5, int):
                    problem += "; put it in quotes (YAML reads an unquoted run of digits as a number)"
                raise ValueError(problem)
            urls = item.get("urls", (base_urls or {}).get(item["filename"], ()))
            files.append(RemoteFile(item["filename"], md5.lower(), tuple(urls)))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{where}: a file needs filename and md5 ({error})") from None
    return tuple(files)
