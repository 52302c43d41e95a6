"""Successive halving: every configuration (all its seeds) trains to ``min_epochs``; the best 1/eta of them, by
mean validation accuracy over seeds (ties: lower mean validation loss; test accuracy never), go on to
``min_epochs x eta`` epochs, and so on up to ``train.epochs``. A run that goes on continues from the state its
previous rung saved, under the schedule of the full budget: no epoch is trained twice.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
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

    def index(self, epochs: int) -> int:
        """The rung that trains to ``epochs``."""
        return self.rungs.index(epochs)

    def start(self, rung: int) -> int:
        """The epoch a rung's runs continue from."""
        return self.rungs[rung - 1] if rung else 0

    def keep_after(self, epochs: int) -> int:
        """How many configurations the rung that ends at ``epochs`` promotes."""
        return self.configurations[self.index(epochs) + 1]

    def epochs_trained(self, seeds: int) -> int:
        """Epochs the whole search trains, every rung continuing where the last stopped."""
        return seeds * sum(
            count * (end - self.start(rung)) for rung, (count, end) in enumerate(zip(self.configurations, self.rungs))
        )

    def describe(self, seeds: int) -> str:
        full = self.configurations[0] * seeds * self.rungs[-1]
        trained = self.epochs_trained(seeds)
        steps = ", ".join(f"{count} to {epochs}" for epochs, count in zip(self.rungs, self.configurations))
        return (
            f"successive halving of {self.configurations[0]} configurations x {seeds} seed(s), configurations to "
            f"epochs per rung: {steps}; {trained} epochs in all against the full grid's {full} ({trained / full:.0%})"
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


def configuration_of(run_id: str) -> str:
    """A run's configuration: its id without the seed (``lr-0.1_sample-03``); ``all`` when nothing is swept."""
    return run_id.rpartition("_seed-")[0] or "all"


def runs_of(configurations: Iterable[str], run_ids: Iterable[str]) -> list[str]:
    """The runs (every seed) of ``configurations``, in the order of ``run_ids``."""
    chosen = set(configurations)
    return [run_id for run_id in run_ids if configuration_of(run_id) in chosen]


def rank(records: Iterable[Mapping], keep: int) -> list[dict]:
    """A rung's configurations, best first, from its runs' rung records (``best_val_acc``, ``best_val_loss`` up to
    the rung's epochs): mean over seeds, ties broken by the lower mean loss, then by name; the first ``keep`` marked
    promoted."""
    seeds: dict[str, list[Mapping]] = {}
    for record in records:
        seeds.setdefault(configuration_of(record["run_id"]), []).append(record)
    rows = [
        {
            "configuration": configuration,
            "seeds": len(found),
            "val_acc": statistics.fmean(record["best_val_acc"] for record in found),
            "val_loss": statistics.fmean(record["best_val_loss"] for record in found),
        }
        for configuration, found in seeds.items()
    ]
    rows.sort(key=lambda row: (-row["val_acc"], row["val_loss"], row["configuration"]))
    return [{**row, "promoted": index < keep} for index, row in enumerate(rows)]


def describe_rung_requests(ladder: Ladder, requests: Mapping[int, Mapping], seeds: int, gpus: int) -> list[str]:
    """The dry run's lines on what each rung's train jobs ask a site for (``requests``: per rung's last epoch, per
    run, a request with ``minutes`` and ``mem_mb``), and the search's GPU-hours at most."""
    lines, hours = [], 0.0
    for rung, epochs in enumerate(ladder.rungs):
        asked = list(requests[epochs].values())
        minutes = sorted({request.minutes for request in asked})
        memory = max(request.mem_mb for request in asked)
        runs = ladder.configurations[rung] * seeds
        span = f"{minutes[0]}" if len(minutes) == 1 else f"{minutes[0]}-{minutes[-1]}"
        lines.append(
            f"rung {rung + 1} (epochs {ladder.start(rung) + 1}-{epochs}): {runs} train job(s), each asks for {span} "
            f"min, up to {memory} MB"
        )
        hours += runs * gpus * minutes[-1] / 60
    lines.append(f"the search asks for at most {hours:g} GPU-hours on first attempts")
    return lines
