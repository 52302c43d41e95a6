"""Successive halving: every configuration (all its seeds) trains to ``min_epochs``; the best 1/eta of them, by
mean validation accuracy over seeds (ties: lower mean validation loss; test accuracy never), go on to
``min_epochs x eta`` epochs, and so on up to ``train.epochs``. A run that goes on continues from the state its
previous rung saved, under the schedule of the full budget: no epoch is trained twice.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass


class HalvingError(ValueError):
    """Halving settings that cannot work; the message is one line."""


@dataclass(frozen=True)
class Ladder:
    """The plan: the epochs each rung trains to, and how many configurations each keeps."""

    rungs: tuple[int, ...]  # epochs reached at the end of each rung; the last is train.epochs
    configurations: tuple[int, ...]  # configurations in each rung

    @property
    def last(self) -> int:
        return len(self.rungs) - 1

    def epochs_trained(self, seeds: int) -> int:
        """Epochs the whole search trains, every rung continuing where the last stopped."""
        starts = (0, *self.rungs[:-1])
        return seeds * sum(count * (end - start) for count, start, end in zip(self.configurations, starts, self.rungs))

    def describe(self, seeds: int) -> str:
        full = self.configurations[0] * seeds * self.rungs[-1]
        trained = self.epochs_trained(seeds)
        steps = ", ".join(f"{epochs} epochs: {count}" for epochs, count in zip(self.rungs, self.configurations))
        return (
            f"successive halving of {self.configurations[0]} configurations x {seeds} seed(s), configurations per "
            f"rung ({steps}): {trained} epochs in all against the full grid's {full} ({trained / full:.0%})"
        )


def ladder(configurations: int, eta: int, min_epochs: int, epochs: int, where: str = "sweep.halving") -> Ladder:
    """The rungs of a search of ``configurations``, checked: one line for what cannot work."""
    if min_epochs > epochs:
        raise HalvingError(f"{where}.min_epochs: {min_epochs} is more than train.epochs ({epochs})")
    rungs = [min_epochs]
    while rungs[-1] * eta < epochs:
        rungs.append(rungs[-1] * eta)
    if rungs[-1] != epochs:
        rungs.append(epochs)
    counts = [configurations]
    for _ in rungs[1:]:
        counts.append(counts[-1] // eta)
    if counts[-1] < 1:
        needed = eta ** (len(rungs) - 1)
        raise HalvingError(
            f"{where}: {configurations} configuration(s) cannot fill {len(rungs)} rungs ({', '.join(map(str, rungs))} "
            f"epochs) with eta {eta}: the last would keep none; sweep at least {needed}, or raise min_epochs"
        )
    return Ladder(tuple(rungs), tuple(counts))


def promoted(records: Mapping[str, list[dict]], keep: int) -> list[str]:
    """The ``keep`` best configurations of a rung, best first, from each configuration's rung records (one per
    seed: ``best_val_acc``, ``best_val_loss`` up to the rung's epochs)."""

    def score(configuration: str) -> tuple[float, float, str]:
        seeds = records[configuration]
        accuracy = statistics.fmean(record["best_val_acc"] for record in seeds)
        loss = statistics.fmean(record["best_val_loss"] for record in seeds)
        return (-accuracy, loss, configuration)

    return sorted(records, key=score)[:keep]
