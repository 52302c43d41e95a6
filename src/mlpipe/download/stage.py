"""Entry point of the download stage: put one dataset's raw files and manifest in its raw folder.

Sources, in order: a verified copy in ``dataset.local_dir`` (no network), else ``dataset.mirror``
(replacing the official location), else the official URLs. A file already downloaded and
verified is never fetched again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlpipe.download.archives import extract_tar
from mlpipe.download.builtin import export_digits
from mlpipe.download.catalog import EXTRACTED, RemoteFile, dataset_spec
from mlpipe.download.image_folder import index_image_folder
from mlpipe.download.transfer import fetch, verify
from mlpipe.formats.cifar import class_names
from mlpipe.io import write_json
from mlpipe.layout import MANIFEST_NAME

log = logging.getLogger(__name__)


def download_dataset(dataset_config: dict, raw_dir: Path) -> Path:
    """Put the raw files of ``dataset_config["name"]`` in ``raw_dir``; return the manifest path."""
    name = dataset_config["name"]
    raw_dir.mkdir(parents=True, exist_ok=True)
    if name == "digits":
        manifest = export_digits(raw_dir)
    elif name == "image_folder":
        manifest = index_image_folder(dataset_config.get("image_folder", {}), raw_dir)
    elif name == "custom":  # the lab's Dataset class reads or makes its data itself, when preprocess runs it
        manifest = {"dataset": "custom", "format": "custom"}
    else:
        spec = dataset_spec(name, dataset_config.get("catalog"))
        archives = [remote for remote in spec.files if remote.is_archive]
        if len(archives) > 1:
            raise ValueError(f"{name}: at most one archive per dataset is supported, got {len(archives)}")
        for remote in spec.files:
            path = obtain(remote, raw_dir, dataset_config.get("mirror"), dataset_config.get("local_dir"))
            if remote.is_archive:
                log.info("extracting %s", path)
                extract_tar(path, raw_dir / EXTRACTED)
            elif path.parent != raw_dir:  # a verified local copy: used as is, linked from the raw folder
                (raw_dir / remote.filename).unlink(missing_ok=True)
                (raw_dir / remote.filename).symlink_to(path.resolve())
        classes = list(spec.classes) or class_names(raw_dir / spec.meta["file"], spec.meta["key"])
        manifest = spec.manifest(classes)
    manifest_path = raw_dir / MANIFEST_NAME
    write_json(manifest_path, manifest)  # written last: its presence means the raw data is complete
    log.info("raw %s data in %s", name, raw_dir)
    return manifest_path


def obtain(remote: RemoteFile, raw_dir: Path, mirror: str | None, local_dir: str | None) -> Path:
    """A verified copy of ``remote``: from ``local_dir`` when it is there, else downloaded into ``raw_dir``."""
    if local_dir:
        local = Path(local_dir).expanduser() / remote.filename
        if local.is_file():
            verify(local, remote.md5)
            log.info("%s: using the verified local copy %s (no download)", remote.filename, local)
            return local
        log.info("%s: not in dataset.local_dir %s; downloading", remote.filename, local_dir)
    urls = [f"{mirror.rstrip('/')}/{remote.filename}"] if mirror else list(remote.urls)
    if not urls:
        raise ValueError(f"{remote.filename}: no URL to download it from; set dataset.mirror or dataset.local_dir")
    return fetch(urls, raw_dir / remote.filename, remote.md5)
