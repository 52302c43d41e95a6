"""How Snakemake was started: the profiles it applies and the executor that will run the jobs.

Snakemake does not tell a Snakefile either while parsing it (it picks the executor afterwards), so
the command line is read again with Snakemake's own parser: profiles from ``--profile`` or
``$SNAKEMAKE_PROFILE`` resolved as Snakemake resolves them, and the executor the command line or a
profile selects.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

# Executors that run jobs in this process or on this machine; any other one submits them elsewhere.
LOCAL_EXECUTORS = frozenset({"local", "dryrun", "touch", "slurm-jobstep"})


class InvocationError(ValueError):
    """Snakemake's command line cannot be read; the message is one line."""


@dataclass(frozen=True)
class Invocation:
    profiles: dict[str, Path]  # each profile as typed -> its folder, in the order Snakemake applies them
    executor: str  # "local" when none is selected

    @property
    def submits_jobs(self) -> bool:
        """Whether the executor sends jobs to a scheduler (e.g. ``slurm``) instead of running them here."""
        return self.executor not in LOCAL_EXECUTORS


def is_snakemake_command_line(argv: list[str]) -> bool:
    """Whether ``argv`` is the command line of Snakemake itself (``snakemake`` or ``python -m snakemake``)."""
    program = Path(argv[0]) if argv else Path()
    return program.name == "snakemake" or program.parts[-2:] == ("snakemake", "__main__.py")


def read_invocation(argv: list[str]) -> Invocation | None:
    """The profiles and executor of the Snakemake command line ``argv``; None for another program (the API)."""
    if not is_snakemake_command_line(argv):
        return None
    from snakemake.cli import get_profile_dir, parse_args

    try:
        # parse_args prints "Using profile ..." again; Snakemake has said it already.
        with contextlib.redirect_stderr(io.StringIO()) as said:
            _, args = parse_args(argv[1:])
    except SystemExit:
        raise InvocationError(f"cannot read Snakemake's command line: {said.getvalue().strip()}") from None
    profiles = {}
    for profile in args.profile or []:
        found = get_profile_dir(profile)
        if found is not None:
            profiles[profile] = found[0]
    return Invocation(profiles=profiles, executor=args.executor or "local")
