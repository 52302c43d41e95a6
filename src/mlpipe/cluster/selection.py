"""Which SLURM site a run of the workflow maps its jobs onto, however Snakemake was started.

The site must not hang on a profile key that the command line can replace (``config:`` vanishes as
soon as the user adds any ``--config``), so it is found, in this order:

1. ``site`` in the config: an explicit site file;
2. ``$MLPIPE_SITE``: the resolved site, set by the Snakemake that submitted this job (a job step
   parses the workflow again and must map it the same way);
3. ``site.yaml`` beside the last profile given with ``--profile`` (or ``$SNAKEMAKE_PROFILE``) that has one;
4. the study's record (``<results_dir>/site.json``, written when a study starts on a site), for
   commands typed without the profile: ``archive``, ``clean_checkpoints``, ``--report``. They see the
   study's paths; a command that would run cluster jobs on this machine is refused (:func:`refuse_cluster_jobs`).

An executor that submits jobs (``--executor slurm``) with none of the first three stops with one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpipe.cluster.invocation import Invocation
from mlpipe.cluster.site import Site, SiteError, load_site
from mlpipe.io import read_json, write_json

SITE_ENV = "MLPIPE_SITE"
SITE_FILE_NAME = "site.yaml"  # beside a profile's config.yaml


@dataclass(frozen=True)
class SiteChoice:
    site: Site | None
    source: str  # "config", "submitting Snakemake", "profile", "study record" or "none"
    selected_with: str | None = None  # what selects the site on the command line, e.g. "--profile profiles/osc"

    @property
    def from_study_record(self) -> bool:
        return self.source == "study record"

    @property
    def records_the_study(self) -> bool:
        """Whether a run with this choice records its site for later commands (only the Snakemake a user started)."""
        return self.source in ("config", "profile")

    def to_json(self) -> str:
        return json.dumps({"selected_with": self.selected_with, "site": self.site.to_dict()})

    @classmethod
    def from_json(cls, text: str, source: str) -> SiteChoice:
        record = json.loads(text)
        return cls(Site.from_dict(record["site"]), source, record["selected_with"])


def choose_site(
    *,
    config_site: str | None,
    invocation: Invocation | None,
    environ: Mapping[str, str],
    record_file: Path,
    project: str,
    base_dir: Path,
    prefer_queue: str | None = None,
) -> SiteChoice:
    """The site this run maps its jobs onto (see the module docstring for the order); ``prefer_queue`` as in
    :func:`mlpipe.cluster.site.load_site`."""
    if config_site:
        site = load_site(base_dir / config_site, environ, project, prefer_queue)
        return SiteChoice(site, "config", f"--config site={config_site}")
    if environ.get(SITE_ENV):
        return SiteChoice.from_json(environ[SITE_ENV], "submitting Snakemake")
    profiles = invocation.profiles if invocation else {}
    with_site = [(typed, folder) for typed, folder in profiles.items() if (folder / SITE_FILE_NAME).is_file()]
    if with_site:
        typed, folder = with_site[-1]
        site = load_site(folder / SITE_FILE_NAME, environ, project, prefer_queue)
        return SiteChoice(site, "profile", f"--profile {typed}")
    if invocation is not None and invocation.submits_jobs:
        named = f" ({', '.join(profiles)} has no {SITE_FILE_NAME})" if profiles else ""
        raise SiteError(
            f"the {invocation.executor} executor needs a site to map jobs onto{named}: use --profile profiles/osc, "
            f"or a profile with a {SITE_FILE_NAME} beside its config.yaml (see profiles/slurm-template)"
        )
    if record_file.is_file():
        return SiteChoice.from_json(record_file.read_text(), "study record")
    return SiteChoice(None, "none")


def record_site(choice: SiteChoice, record_file: Path) -> None:
    """Leave the site in the study's results, for later commands typed without the profile."""
    record = json.loads(choice.to_json())
    if not record_file.is_file() or read_json(record_file) != record:
        write_json(record_file, record)


def refuse_cluster_jobs(choice: SiteChoice, record_file: Path, cluster_rules: Iterable[str]) -> None:
    """Stop a command typed without the profile (the site from the study record) that would run jobs meant for
    the cluster on this machine."""
    rules = sorted(set(cluster_rules))
    if rules:
        site = choice.site
        raise SiteError(
            f"{record_file} says this study runs on {site.name} {site.cluster} ({choice.selected_with}), and this "
            f"command would run its {', '.join(rules)} jobs here: add {choice.selected_with}"
        )
