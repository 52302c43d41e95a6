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
# Snakemake's command-line actions that plan, show or tidy without running a job (snakemake.cli, 9.x).
NO_JOB_ACTIONS = (
    *("dryrun", "touch", "lint", "list_target_rules", "list_rules", "print_compilation", "containerize"),
    *("generate_unit_tests", "dag", "rulegraph", "filegraph", "d3dag", "unlock", "cleanup_metadata"),
    *("conda_cleanup_envs", "conda_create_envs_only", "list_conda_envs", "cleanup_shadow"),
    *("container_cleanup_images", "list_changes", "list_input_changes", "list_params_changes"),
    *("list_untracked", "summary", "detailed_summary", "archive", "delete_all_output", "delete_temp_output"),
)


class InvocationError(ValueError):
    """Snakemake's command line cannot be read; the message is one line."""


@dataclass(frozen=True)
class Invocation:
    profiles: dict[str, Path]  # each profile as typed -> its folder, in the order Snakemake applies them
    executor: str  # "local" when none is selected
    runs_jobs: bool = True  # False for a dry run, --unlock, --summary, --dag, a report, ...

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
    makes_report_only = bool(args.report) and not getattr(args, "report_after_run", False)
    no_jobs = makes_report_only or any(getattr(args, action, None) for action in NO_JOB_ACTIONS)
    return Invocation(profiles=profiles, executor=args.executor or "local", runs_jobs=not no_jobs)
