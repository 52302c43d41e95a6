"""Start one training process per GPU with torchrun, from the process the scheduler started."""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn


def with_options(argv: list[str], **options: str) -> list[str]:
    """``argv`` with each ``--option value`` replaced (or added); keys use ``_`` for ``-``."""
    result, skip = [], False
    wanted = {f"--{key.replace('_', '-')}": value for key, value in options.items()}
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in wanted:
            skip = "=" not in arg and index + 1 < len(argv)
            continue
        result.append(arg)
    for name, value in wanted.items():
        result += [name, value]
    return result


def relaunch_under_torchrun(script: str, argv: list[str], gpus: int, threads: int) -> NoReturn:
    """Replace this process by ``torchrun --nproc-per-node=gpus script argv`` (threads split over workers).

    The torchrun agent ignores SIGUSR1 (the disposition is inherited through exec) so that SLURM's
    warning before walltime reaches the workers, which checkpoint, and not the agent, which would die
    of it and take the workers down.
    """
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    per_worker = str(max(1, threads // gpus))
    os.environ.setdefault("OMP_NUM_THREADS", per_worker)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
    os.execv(sys.executable, [*torchrun, script, *with_options(argv, threads=per_worker)])
