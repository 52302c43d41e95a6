"""Index a user's image folder, ``<root>/<class>/<image>``, into a file list preprocess decodes.

Classes are the sorted names of the class folders. With ``split_folders`` the root holds
``train/`` and ``test/`` (and optionally ``val/``), each laid out by class. A class folder without
PNG or JPEG images (in ``train/``) is refused: the model would get an output for a class it never sees.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mlpipe.io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FILE_LIST = "files.csv"


class ImageFolderError(ValueError):
    """An image folder that cannot be indexed as classes of images."""


def index_image_folder(settings: dict, raw_dir: Path) -> dict:
    if not settings.get("root"):
        raise ImageFolderError("dataset.image_folder.root: set it to the folder holding <class>/<image> files")
    root = Path(settings["root"]).expanduser().resolve()
    if not root.is_dir():
        raise ImageFolderError(f"dataset.image_folder.root: no such folder {root}")
    if settings.get("split_folders"):
        splits = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
        if not {"train", "test"} <= set(splits):
            raise ImageFolderError(f"dataset.image_folder.split_folders: {root} needs train/ and test/ folders")
    else:
        splits = {"all": root}
    classes = sorted(path.name for path in next(iter(splits.values())).iterdir() if path.is_dir())
    if len(classes) < 2:
        raise ImageFolderError(f"dataset.image_folder.root: {root} needs at least two class folders, found {classes}")
    rows = []
    for split, folder in splits.items():
        for label, name in enumerate(classes):
            images = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images and split in ("all", "train"):
                _refuse_class_without_images(folder / name)
            rows += [{"split": split, "path": str(image.relative_to(root)), "label": label} for image in images]
        extra = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
        if extra:
            raise ImageFolderError(f"{folder}: class folders {extra} are not in {next(iter(splits.values()))}")
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


def _refuse_class_without_images(class_folder: Path) -> None:
    others = sorted(path for path in class_folder.rglob("*") if path.is_file())
    found = f" (it holds {len(others)} other files, e.g. {others[0].name})" if others else ""
    raise ImageFolderError(
        f"dataset.image_folder.root: class folder {class_folder} has no PNG or JPEG images{found}; "
        "add some, or remove the folder"
    )
