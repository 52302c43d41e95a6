"""Read the lab's own torch Dataset (``dataset.name: custom``) once, in worker processes, into one memory-mapped array.

The class is built as the lab guide writes it: ``CustomDataset(**dataset.custom.args)``, or once per split with
``split="train"``/``"test"`` or ``train=True``/``False`` when its constructor has such a parameter (torchvision's
datasets do), so that an official test split is kept. ``dataset[i]`` gives ``(sample, label)``:

- sample: a PIL image (stored as (C, H, W)), a numpy array or a torch tensor, of one shape for every index:
  (C, H, W) images, (C, T) signals, (F,) feature vectors, ...; uint8 samples are stored as uint8, any other
  numbers as float32;
- label: an integer class index (an int, a numpy integer, or an integer tensor or array of one element).

Class names come from the Dataset's ``classes`` attribute when it has one, else they are ``0 .. K-1``. No
``transform`` is passed: training normalises and augments on the device.

DataLoader workers (one per thread of the job) each read a chunk of indices and write its samples straight into
the array. A sample that breaks the rules stops preprocess with one line naming the class and the index.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import numpy as np

from mlpipe.preprocess.readers import ArrayReader
from mlpipe.progress import ProgressReport, samples
from mlpipe.user_code import accepts, construct, load_class, parse_reference

log = logging.getLogger(__name__)

SPLIT_ARGUMENTS = ("split", "train")  # constructor parameters that select torchvision-style official splits
CHUNK = 256  # samples per worker task
KEY = "dataset.custom.class"


class DatasetError(ValueError):
    """A Dataset mlpipe cannot read; the message names the class (and the index at fault)."""


def read_user_dataset(settings: dict, decoded_path: Path, threads: int = 1) -> tuple[ArrayReader, list[str]]:
    """Read every split of the Dataset ``settings["class"]`` into ``decoded_path``; return a reader over it and the
    class names."""
    reference = parse_reference(settings["class"])
    datasets = build_splits(load_class(reference, KEY), settings["args"])
    lengths = {split: _length(dataset, name) for split, (name, dataset) in datasets.items()}
    first_name, first = next(iter(datasets.values()))
    rules = SampleRules.from_first(first_name, first[0])
    log.info(
        "reading %s: %s, samples %s %s",
        reference.class_name,
        " and ".join(f"{name} ({count:,})" for (name, _), count in zip(datasets.values(), lengths.values())),
        rules.shape,
        rules.dtype.name,
    )
    total = sum(lengths.values())
    # Only the file is made here (header and size); the workers open it themselves and write into it.
    np.lib.format.open_memmap(decoded_path, mode="w+", dtype=rules.dtype, shape=(total, *rules.shape)).flush()
    progress = ProgressReport(reference.class_name, total, samples)
    labels, offset = {}, 0
    try:
        for split, (name, dataset) in datasets.items():
            writer = ChunkWriter(dataset, name, offset, lengths[split], decoded_path, rules)
            labels[split] = _read(writer, threads, progress)
            offset += lengths[split]
    finally:
        progress.close()
    classes = class_names(datasets, labels)
    indices, start = {}, 0
    for split, count in lengths.items():
        indices[split] = np.arange(start, start + count)
        start += count
    return ArrayReader(np.load(decoded_path, mmap_mode="r"), np.concatenate(list(labels.values())), indices), classes


def build_splits(dataset_class, args: dict) -> dict[str, tuple[str, object]]:
    """``{split: (how it is named in messages, dataset)}``: train and test when the constructor takes a split
    argument, else one ``all`` for mlpipe to split."""
    for argument, values in (("split", ("train", "test")), ("train", (True, False))):
        if accepts(dataset_class, argument):
            return {
                split: (
                    f"{dataset_class.__name__}({argument}={value!r})",
                    _checked(construct(dataset_class, {**args, argument: value}, "dataset.custom.args"), KEY),
                )
                for split, value in zip(("train", "test"), values)
            }
    return {"all": (dataset_class.__name__, _checked(construct(dataset_class, dict(args), "dataset.custom.args"), KEY))}


class SampleRules:
    """What every sample must be, learnt from sample 0: its shape and how it is stored."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype):
        import torch
        from PIL import Image

        self.name, self.shape, self.dtype = name, shape, dtype
        self.tensor_type, self.image_type = torch.Tensor, Image.Image

    @classmethod
    def from_first(cls, name: str, item) -> SampleRules:
        probe = cls(name, (), np.dtype(np.uint8))
        sample, _ = probe.split_item(item, 0)
        array = probe.as_array(sample, 0)
        if array.ndim == 0:
            raise DatasetError(f"{name}[0]: the sample is a single number; return an array or tensor of them")
        dtype = np.dtype(np.uint8) if array.dtype in (np.uint8, np.bool_) else np.dtype(np.float32)
        return cls(name, array.shape, dtype)

    def split_item(self, item, index: int) -> tuple[object, object]:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DatasetError(
                f"{self.name}[{index}] returned a {type(item).__name__}; __getitem__ must return (sample, label)"
            )
        return item[0], item[1]

    def as_array(self, sample, index: int) -> np.ndarray:
        """The sample as an array: a PIL image as (C, H, W), a tensor or array as it is."""
        if isinstance(sample, self.tensor_type):
            sample = sample.detach().cpu()
            array = (sample.float() if sample.dtype.is_floating_point else sample).numpy()
        elif isinstance(sample, self.image_type):
            array = np.asarray(sample)
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        else:
            array = np.asarray(sample)
        if array.dtype.kind not in "biuf":
            raise DatasetError(
                f"{self.name}[{index}]: the sample is a {type(sample).__name__} of {array.dtype}; "
                "return a PIL image, a numpy array or a tensor of numbers"
            )
        return array

    def check(self, array: np.ndarray, index: int) -> None:
        if array.shape != self.shape:
            raise DatasetError(
                f"{self.name}[{index}]: the sample has shape {array.shape}, but sample 0 has {self.shape}; "
                "every sample must have the same shape"
            )
        if self.dtype == np.uint8 and array.dtype not in (np.uint8, np.bool_):
            raise DatasetError(
                f"{self.name}[{index}]: the sample is {array.dtype}, but sample 0 is uint8; return one dtype "
                "for every sample"
            )

    def label(self, label, index: int) -> int:
        if isinstance(label, self.tensor_type):
            label = label.detach().cpu().numpy()
        if isinstance(label, np.ndarray) and label.size == 1 and label.dtype.kind in "biu":
            label = label.reshape(-1)[0]
        if not isinstance(label, int | np.integer | np.bool_):
            raise DatasetError(
                f"{self.name}[{index}]: the label {label!r} is not an integer class index; return an int in "
                "0..K-1 (class names belong in a `classes` attribute)"
            )
        if label < 0:
            raise DatasetError(f"{self.name}[{index}]: the label {label} is negative; class indices start at 0")
        return int(label)


class ChunkWriter:
    """A map-style dataset for DataLoader whose item ``k`` writes chunk ``k`` of the lab's Dataset into the array
    and returns its labels, or a :class:`ChunkFailure` (a returned failure stays one line; a raised one would
    come back wrapped in the worker's traceback)."""

    def __init__(self, dataset, name: str, offset: int, count: int, path: Path, rules: SampleRules):
        self.dataset, self.name, self.rules = dataset, name, rules
        self.offset, self.count, self.path = offset, count, path
        self._array = None  # opened in the process that writes, on first use

    def __len__(self) -> int:
        return -(-self.count // CHUNK)

    def __getitem__(self, chunk: int):
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r+")
        start, stop = chunk * CHUNK, min((chunk + 1) * CHUNK, self.count)
        out = self._array[self.offset + start : self.offset + stop]
        labels = np.empty(stop - start, dtype=np.int64)
        index = start
        try:
            for index in range(start, stop):
                sample, label = self.rules.split_item(self.dataset[index], index)
                array = self.rules.as_array(sample, index)
                self.rules.check(array, index)
                out[index - start] = array
                labels[index - start] = self.rules.label(label, index)
        except DatasetError as error:
            return ChunkFailure(str(error))
        except Exception as error:  # the lab's code failed: its traceback is what helps
            return ChunkFailure(f"{self.name}[{index}] raised {type(error).__name__}: {error}", traceback.format_exc())
        if out.dtype != np.uint8 and not np.isfinite(out).all():
            bad = start + int(np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))[0])
            return ChunkFailure(f"{self.name}[{bad}]: the sample holds NaN or infinite values")
        return labels


class ChunkFailure:
    def __init__(self, message: str, details: str | None = None):
        self.message, self.details = message, details


def class_names(datasets: dict, labels: dict[str, np.ndarray]) -> list[str]:
    """The Dataset's ``classes`` when it has them (every label must index them), else ``0 .. K-1``."""
    name, dataset = next(iter(datasets.values()))
    classes = getattr(dataset, "classes", None)
    highest = max(int(split_labels.max()) for split_labels in labels.values())
    if classes is not None:
        names = [str(entry) for entry in classes]
        for split, split_labels in labels.items():
            above = np.flatnonzero(split_labels >= len(names))
            if len(above):
                raise DatasetError(
                    f"{datasets[split][0]}[{int(above[0])}]: the label {int(split_labels[above[0]])} is not an index "
                    f"of its {len(names)} classes"
                )
    else:
        names = [str(label) for label in range(highest + 1)]
    if len(names) < 2:
        raise DatasetError(f"{name}: every label is 0; a classifier needs at least two classes")
    return names


def _read(writer: ChunkWriter, threads: int, progress: ProgressReport) -> np.ndarray:
    from torch.utils.data import DataLoader

    workers = threads if threads > 1 else 0
    loader = DataLoader(writer, batch_size=None, num_workers=workers, collate_fn=_unchanged)
    labels = []
    for result in loader:
        if isinstance(result, ChunkFailure):
            if result.details:
                log.error("%s", result.details.rstrip())
            raise DatasetError(result.message + ("; its traceback is above" if result.details else ""))
        labels.append(result)
        progress.advance(len(result))
    return np.concatenate(labels)


def _unchanged(item):
    return item


def _checked(dataset, key: str):
    """A map-style Dataset: it has a length and items by index."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise DatasetError(
            f"{key}: {type(dataset).__name__} is not a map-style Dataset; it needs __len__ and __getitem__"
        )
    return dataset


def _length(dataset, name: str) -> int:
    count = len(dataset)
    if count == 0:
        raise DatasetError(f"{KEY}: {name} is empty (its len() is 0)")
    return count
