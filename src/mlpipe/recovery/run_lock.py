"""One live trainer per run: a lock on ``owner.lock`` in the run's state folder, held while the job trains.

A second trainer of the same run (a duplicate submitted by a Snakemake restarted after a crash, or one left
running after ``--unlock``) stops at once, naming the job that holds the run, before it touches any file of it.
The lock is a POSIX record lock (``fcntl.lockf``), which NFS and GPFS honour across nodes; the kernel (or the
file server) drops it when the holder dies, however it dies. The file also names its holder, for the message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlpipe.layout import OWNER_LOCK_NAME
from mlpipe.tracking.run_record import now

# struct flock as Linux lays it out on 64-bit machines: type, whence, start, length, pid.
FLOCK = struct.Struct("hhqqi")


class RunBusyError(RuntimeError):
    """Another live process trains this run."""


def holder_description(holder: Mapping) -> str:
    """``SLURM job 123_4 on host node01 (pid 567, since ...)``, or ``pid 567 on host vm (since ...)``."""
    where = f"host {holder.get('host', '?')}"
    since = f"since {holder['since']}" if holder.get("since") else "since ?"
    if holder.get("slurm_job_id"):
        return f"SLURM job {holder['slurm_job_id']} on {where} (pid {holder.get('pid', '?')}, {since})"
    return f"pid {holder.get('pid', '?')} on {where} ({since})"


@contextlib.contextmanager
def hold_run(state_dir: Path, run_id: str, slurm_job_id: str | None) -> Iterator[None]:
    """Hold the run's state folder for the life of this process (and of a program it ``exec``s: torchrun).

    Raises :class:`RunBusyError` when a live process holds it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / OWNER_LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise RunBusyError(
                f"{run_id} is being trained by {holder_description(_read_holder(path))}, which holds {path}; "
                "this job stops and leaves the run to it"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job_id": slurm_job_id, "since": now()}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(holder) + "\n").encode(), 0)
        os.set_inheritable(descriptor, True)  # an exec'd torchrun keeps the lock while its workers train
        yield
    finally:
        os.close(descriptor)  # releases the lock


def run_holder(state_dir: Path) -> dict | None:
    """Who holds the run's state folder now, or None when no live process does.

    Asks without taking a lock (``F_GETLK``), so a trainer starting in that instant is not disturbed.
    """
    path = state_dir / OWNER_LOCK_NAME
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        query = FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)  # the whole file, as hold_run locks it
        lock_type = FLOCK.unpack(fcntl.fcntl(descriptor, fcntl.F_GETLK, query))[0]
    finally:
        os.close(descriptor)
    return None if lock_type == fcntl.F_UNLCK else _read_holder(path)


def _read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
