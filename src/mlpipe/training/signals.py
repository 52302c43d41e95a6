"""Turn SIGUSR1/SIGTERM into a polite request to checkpoint and stop.

SLURM sends a signal before walltime when the job was submitted with ``--signal`` (and
SIGTERM when it is cancelled or preempted). The handler only sets a flag; the training loop
checks it between steps, saves a checkpoint and exits with :data:`EXIT_CHECKPOINTED`, so the
next attempt of the job resumes from there.
"""

from __future__ import annotations

import logging
import signal
from typing import Self

log = logging.getLogger(__name__)

EXIT_CHECKPOINTED = 75  # EX_TEMPFAIL: stopped on request, state saved, run again to resume
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class StopRequest:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous = {}

    def __enter__(self) -> Self:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        log.warning("received %s: will checkpoint and stop after the current step", self.signal_name)
