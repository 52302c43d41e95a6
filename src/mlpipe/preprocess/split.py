"""Deterministic, seeded, stratified assignment of examples to train, val and test."""

from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
DROPPED = -1  # left out of every split (dataset.subset)
SPLIT_NAMES = {VAL: "validation", TEST: "test"}


class SplitError(ValueError):
    """A split that leaves a class without training images, or the validation or test split empty."""


def stratified_assignment(labels: np.ndarray, holdout: dict[int, float], seed: int) -> np.ndarray:
    """Return a split code per example: each class gives ``round(n * fraction)`` to each holdout split.

    Examples not held out are TRAIN. The same labels, fractions and seed always give the same
    assignment, whatever the machine.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    assignment = np.full(len(labels), TRAIN, dtype=np.int8)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for split, fraction in holdout.items():
            count = round(len(members) * fraction)
            assignment[members[start : start + count]] = split
            start += count
    return assignment


def assign_source_splits(
    labels_by_source: dict[str, np.ndarray], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Assign every example of every source split.

    Explicit ``train``/``val``/``test`` splits are kept. A source with an official ``test`` split
    keeps it and carves validation out of ``train``; a source with one ``all`` split is cut three
    ways: ``test_fraction`` of everything, then ``val_fraction`` of the rest.
    """
    if set(labels_by_source) == {"train", "val", "test"}:  # explicit split folders: nothing to draw
        codes = {"train": TRAIN, "val": VAL, "test": TEST}
        return {name: np.full(len(labels), codes[name], dtype=np.int8) for name, labels in labels_by_source.items()}
    if set(labels_by_source) == {"train", "test"}:
        return {
            "train": stratified_assignment(labels_by_source["train"], {VAL: val_fraction}, seed),
            "test": np.full(len(labels_by_source["test"]), TEST, dtype=np.int8),
        }
    if set(labels_by_source) == {"all"}:
        holdout = {TEST: test_fraction, VAL: (1 - test_fraction) * val_fraction}
        return {"all": stratified_assignment(labels_by_source["all"], holdout, seed)}
    raise ValueError(
        f"raw splits must be 'all', 'train'+'test' or 'train'+'val'+'test', got {sorted(labels_by_source)}"
    )


def keep_subset(
    labels_by_source: dict[str, np.ndarray], assignment: dict[str, np.ndarray], train_samples: int, seed: int
) -> dict[str, np.ndarray]:
    """An assignment that keeps about ``train_samples`` training examples, spread evenly over the classes
    (``ceil(train_samples / classes)`` each), and half as many per class in validation and test; the rest DROPPED.

    Which examples stay is drawn from ``seed``, so the subset is as reproducible as the split.
    """
    num_classes = 1 + max((int(labels.max()) for labels in labels_by_source.values() if len(labels)), default=0)
    per_class = {TRAIN: -(-train_samples // num_classes)}
    per_class |= {VAL: max(1, per_class[TRAIN] // 2), TEST: max(1, per_class[TRAIN] // 2)}
    sources = list(labels_by_source)
    labels = np.concatenate([labels_by_source[source] for source in sources])
    codes = np.concatenate([assignment[source] for source in sources]).copy()
    rng = np.random.Generator(np.random.PCG64(seed))
    for target, limit in per_class.items():
        for label in range(num_classes):
            members = np.flatnonzero((codes == target) & (labels == label))
            if len(members) > limit:
                codes[rng.permutation(members)[limit:]] = DROPPED
    kept, start = {}, 0
    for source in sources:
        kept[source] = codes[start : start + len(labels_by_source[source])]
        start += len(labels_by_source[source])
    return kept


def split_counts(
    labels_by_source: dict[str, np.ndarray], assignment: dict[str, np.ndarray], num_classes: int
) -> np.ndarray:
    """Examples per (class, target split) of an assignment."""
    counts = np.zeros((num_classes, 3), dtype=np.int64)
    for source, labels in labels_by_source.items():
        kept = assignment[source] != DROPPED
        np.add.at(counts, (labels[kept], assignment[source][kept].astype(np.int64)), 1)
    return counts


def planned_split_counts(source_counts: dict[str, list[int]], val_fraction: float, test_fraction: float) -> np.ndarray:
    """Examples per (class, target split) that :func:`assign_source_splits` gives sources with these class counts.

    The counts alone decide them (each class gives ``round(n * fraction)`` to each holdout split in turn, as far
    as it has examples), so new fractions can be checked without the labels.
    """
    num_classes = len(next(iter(source_counts.values())))
    counts = np.zeros((num_classes, 3), dtype=np.int64)
    if set(source_counts) == {"train", "val", "test"}:
        holdouts = {name: {} for name in source_counts}
    elif set(source_counts) == {"train", "test"}:
        holdouts = {"train": {VAL: val_fraction}, "test": {}}
    else:
        holdouts = {"all": {TEST: test_fraction, VAL: (1 - test_fraction) * val_fraction}}
    kept = {"train": TRAIN, "val": VAL, "test": TEST, "all": TRAIN}
    for source, holdout in holdouts.items():
        for label, total in enumerate(source_counts[source]):
            start = 0
            for split, fraction in holdout.items():
                count = round(total * fraction)
                counts[label, split] += max(0, min(count, total - start))
                start += count
            counts[label, kept[source]] += max(0, total - start)
    return counts


def check_split(
    counts: np.ndarray, sources: set[str], classes: list[str], val_fraction: float, test_fraction: float
) -> None:
    """Refuse split ``counts`` (examples per class and target split, drawn from raw ``sources``) that train on
    nothing of some class, or that validate or test on nothing.

    A class without training images still gets an output of the model, which is never taught it; an empty
    validation or test split has no accuracy. The message names the fractions that drew the split.
    """
    keys = _fraction_keys(sources, val_fraction, test_fraction)
    untrained = np.flatnonzero(counts[:, TRAIN] == 0)
    if len(untrained):
        label = untrained[0]
        total, held_val, held_test = counts[label].sum(), counts[label, VAL], counts[label, TEST]
        if total == 0 or not (keys[VAL] or keys[TEST]):
            raise SplitError(
                f"class {classes[label]!r} has no training images in the raw data"
                f"{f' (nor do {len(untrained) - 1} other classes)' if len(untrained) > 1 else ''}; "
                "add some, or remove the class"
            )
        named = " and ".join(key for key in (keys[VAL], keys[TEST]) if key)
        raise SplitError(
            f"{named} leave {len(untrained)} of {len(classes)} classes without training images "
            f"(class {classes[label]!r}: {total} images, {held_test} to test, {held_val} to validation); "
            f"lower {'them' if ' and ' in named else 'it'} so that every class keeps some"
        )
    for split, name in SPLIT_NAMES.items():
        if counts[:, split].sum() == 0:
            where = keys[split] or f"the raw data's {name} split"
            raise SplitError(f"{where} leaves the {name} split empty; {'raise it' if keys[split] else 'add images'}")


def _fraction_keys(sources: set[str], val_fraction: float, test_fraction: float) -> dict[int, str]:
    """The config key (with its value) that drew each holdout split, or "" where the data came split."""
    return {
        VAL: f"dataset.val_fraction {val_fraction:g}" if "val" not in sources else "",
        TEST: f"dataset.test_fraction {test_fraction:g}" if sources == {"all"} else "",
    }
