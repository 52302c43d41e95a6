"""Progress of a long loop: a bar on a terminal, a log line every few seconds otherwise (batch jobs, CI)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def samples(count: float) -> str:
    return f"{count:,.0f} samples"


class ProgressReport:
    """Counts what is done of ``total`` (None: unknown), shown in ``amount``'s unit with the rate since the start."""

    def __init__(
        self, name: str, total: int | None, amount: Callable[[float], str], done: int = 0, every: float = 10.0
    ):
        self.name, self.total, self.amount, self.done, self.every = name, total, amount, done, every
        self.interactive = sys.stderr.isatty()
        self.started = self.last = time.monotonic()
        self.start_done = done

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.interactive:
            self._draw(now)
        elif now - self.last >= self.every:
            self.last = now
            log.info("%s: %s", self.name, self._status(now))

    def close(self) -> None:
        if self.interactive:
            self._draw(time.monotonic())
            sys.stderr.write("\n")

    def _draw(self, now: float) -> None:
        width = 30
        filled = int(width * self.done / self.total) if self.total else 0
        sys.stderr.write(f"\r{self.name} [{'#' * filled}{'.' * (width - filled)}] {self._status(now)}")
        sys.stderr.flush()

    def _status(self, now: float) -> str:
        rate = (self.done - self.start_done) / max(now - self.started, 1e-6)
        if self.total:
            return f"{100 * self.done / self.total:5.1f}% of {self.amount(self.total)}, {self.amount(rate)}/s"
        return f"{self.amount(self.done)}, {self.amount(rate)}/s"
