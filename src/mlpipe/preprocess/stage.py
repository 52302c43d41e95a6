"""Entry point of the preprocess stage: raw files -> split arrays + meta.json.

Samples are decoded one chunk at a time and scattered straight into memory-mapped ``.npy``
files, so a dataset larger than RAM works and peak memory stays near one chunk. Each file
is written under a temporary name and renamed when complete; ``meta.json`` comes last.
Arrays are ``(N, *sample shape)``: uint8 for images and any uint8 data, float32 for other numbers
(a lab's Dataset of float signals or features); labels are int64.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path

import numpy as np

from mlpipe.io import atomic_path, read_json, write_json
from mlpipe.layout import MANIFEST_NAME, META_NAME, SPLITS, processed_files, split_arrays
from mlpipe.preprocess.fractions import COUNTS_KEY, split_basis
from mlpipe.preprocess.image_folder import decode_image_folder
from mlpipe.preprocess.readers import open_reader
from mlpipe.preprocess.split import TRAIN, assign_source_splits, check_split, keep_subset, split_counts
from mlpipe.preprocess.statistics import channel_statistics
from mlpipe.preprocess.user_dataset import read_user_dataset

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 4096


def preprocess_dataset(
    raw_dir: Path, processed_dir: Path, dataset_config: dict, *, threads: int = 1, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict:
    """Split, convert and write one dataset; image folders and a lab's Dataset class are read into one scratch
    array first (removed afterwards)."""
    manifest = read_json(raw_dir / MANIFEST_NAME)
    split = {key: dataset_config[key] for key in ("val_fraction", "test_fraction", "split_seed")}
    split["basis"] = split_basis(raw_dir, dataset_config)
    split["subset"] = dataset_config.get("subset")
    if manifest["format"] not in ("image_folder", "custom"):
        return write_processed(open_reader(raw_dir, manifest), manifest, processed_dir, **split, chunk_size=chunk_size)
    processed_dir.mkdir(parents=True, exist_ok=True)
    decoded = processed_dir / f".decoded-{'images' if manifest['format'] == 'image_folder' else 'samples'}.npy"
    try:
        if manifest["format"] == "image_folder":
            reader, skipped = decode_image_folder(
                raw_dir, manifest, dataset_config["image_folder"], decoded, threads=threads
            )
            manifest = {**manifest, "skipped": skipped}
        else:
            reader, classes = read_user_dataset(dataset_config["custom"], decoded, threads=threads)
            manifest = {**manifest, "classes": classes, "source": dataset_config["custom"]}
        return write_processed(reader, manifest, processed_dir, **split, chunk_size=chunk_size)
    finally:
        decoded.unlink(missing_ok=True)


def write_processed(
    reader,
    manifest: dict,
    processed_dir: Path,
    *,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    basis: str = "",
    subset: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """Scatter the reader's chunks into split arrays (memory-mapped) and write meta.json last, with the class counts
    of each raw split and ``basis`` (:func:`mlpipe.preprocess.fractions.split_basis`) for checking other fractions."""
    num_classes = len(manifest["classes"])
    labels = {split: reader.labels(split) for split in reader.split_names()}
    for split, split_labels in labels.items():
        if len(split_labels) and (split_labels.min() < 0 or split_labels.max() >= num_classes):
            raise ValueError(f"{manifest['dataset']}: labels of split {split!r} fall outside 0..{num_classes - 1}")
    assignment = assign_source_splits(labels, val_fraction, test_fraction, split_seed)
    check_split(
        split_counts(labels, assignment, num_classes), set(labels), manifest["classes"], val_fraction, test_fraction
    )
    if subset:  # a smoke test's few hundred training samples
        assignment = keep_subset(labels, assignment, subset, split_seed)
    positions, counts = _positions(assignment)

    statistics = channel_statistics(reader.dtype, reader.shape[0])  # of the training split only
    processed_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        image_paths = [stack.enter_context(atomic_path(split_arrays(processed_dir, name)[0])) for name in SPLITS]
        images_out = [
            np.lib.format.open_memmap(path, mode="w+", dtype=reader.dtype, shape=(count, *reader.shape))
            for path, count in zip(image_paths, counts)
        ]
        labels_out = [np.empty(count, dtype=np.int64) for count in counts]
        for split in reader.split_names():
            for start, chunk in reader.chunks(split, chunk_size):
                stop = start + len(chunk)
                codes, where = assignment[split][start:stop], positions[split][start:stop]
                for target, (images, target_labels) in enumerate(zip(images_out, labels_out)):
                    mask = codes == target
                    images[where[mask]] = chunk[mask]
                    target_labels[where[mask]] = labels[split][start:stop][mask]
                    if target == TRAIN:
                        statistics.add(chunk[mask])
        for images in images_out:
            images.flush()
        del images_out
        for name, target_labels in zip(SPLITS, labels_out):
            with atomic_path(split_arrays(processed_dir, name)[1]) as tmp:
                np.save(tmp, target_labels)

    mean, std = statistics.result()
    # Content identity of each array: a copy elsewhere (a job's $TMPDIR) is current only if its checksum matches.
    checksums = {path.name: _sha256(path) for path in processed_files(processed_dir)[:-1]}
    meta = {
        "dataset": manifest["dataset"],
        "classes": manifest["classes"],
        "num_classes": num_classes,
        "shape": list(reader.shape),
        "dtype": reader.dtype.name,  # uint8: mean and std are of values / 255; float32: in the data's units
        "mean": mean,
        "std": std,
        "counts": dict(zip(SPLITS, map(int, counts))),
        "split": {"seed": split_seed, "val_fraction": val_fraction, "test_fraction": test_fraction, "basis": basis},
        **({"subset": subset} if subset else {}),
        COUNTS_KEY: {
            name: np.bincount(split_labels, minlength=num_classes).tolist() for name, split_labels in labels.items()
        },
        "checksums": checksums,
        **(
            {"skipped": {"count": len(manifest["skipped"]), "files": manifest["skipped"]}}
            if "skipped" in manifest
            else {}
        ),
        **({"source": manifest["source"]} if "source" in manifest else {}),  # a lab's Dataset class and its args
    }
    write_json(processed_dir / META_NAME, meta)
    log.info("processed %s: %s", manifest["dataset"], meta["counts"])
    return meta


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _positions(assignment: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Index of each example inside its target array, keeping source order; and target sizes."""
    counts = [0] * len(SPLITS)
    positions = {}
    for split, codes in assignment.items():
        where = np.empty(len(codes), dtype=np.int64)
        for target in range(len(SPLITS)):
            mask = codes == target
            where[mask] = counts[target] + np.arange(int(mask.sum()))
            counts[target] += int(mask.sum())
        positions[split] = where
    return positions, counts
