"""Deterministic, seeded, stratified assignment of examples to train, val and test."""

from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2


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
