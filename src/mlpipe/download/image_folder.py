"""Index a user's image folder, ``<root>/<class>/<image>``, into a file list preprocess decodes.

Classes are the sorted names of the class folders. With ``split_folders`` the root holds
``train/`` and ``test/`` (and optionally ``val/``), each laid out by class.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mlpipe.io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FILE_LIST = "files.csv"


def index_image_folder(settings: dict, raw_dir: Path) -> dict:
    if not settings.get("root"):
        raise ValueError("dataset.image_folder.root: set it to the folder holding <class>/<image> files")
    root = Path(settings["root"]).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"dataset.image_folder.root: no such folder {root}")
    if settings.get("split_folders"):
        splits = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
        if not {"train", "test"} <= set(splits):
            raise ValueError(f"dataset.image_folder.split_folders: {root} needs train/ and test/ folders")
    else:
        splits = {"all": root}
    classes = sorted(path.name for path in next(iter(splits.values())).iterdir() if path.is_dir())
    if len(classes) < 2:
        raise ValueError(f"dataset.image_folder.root: {root} needs at least two class folders, found {classes}")
    rows = []
    for split, folder in splits.items():
        for label, name in enumerate(classes):
            images = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            rows += [{"split": split, "path": str(image.relative_to(root)), "label": label} for image in images]
        extra = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
        if extra:
            raise ValueError(f"{folder}: class folders {extra} are not in {next(iter(splits.values()))}")
    if not rows:
        raise ValueError(f"dataset.image_folder.root: no PNG or JPEG images under {root}")
    raw_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(raw_dir / FILE_LIST) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["split", "path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return {
        "dataset": "image_folder",
        "format": "image_folder",
        "root": str(root),
        "classes": classes,
        "splits": {split: FILE_LIST for split in splits},
    }
