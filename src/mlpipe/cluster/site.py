"""A SLURM site: where each kind of job runs, how long it may run, and where scratch is.

A site is described by a YAML file beside its Snakemake profile (``profiles/osc/site.yaml``);
the profile names it with ``config: [site=...]``. Everything here is checked when Snakemake
parses the workflow, so a missing account or an impossible request stops ``snakemake -n``
with one line, before anything is submitted.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlpipe.torch_build import parse_capability

ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]+$")


class SiteError(ValueError):
    """The site settings cannot work; the message is one line naming the setting."""


@dataclass(frozen=True)
class Site:
    name: str
    cluster: str
    queue: str
    account: str
    cpu_partition: str
    gpu_partition: str
    gpu_partitions: tuple[str, ...]
    cores_per_gpu: int
    max_runtime: int  # minutes
    scratch_root: Path
    scratch_purge_days: int
    modules: tuple[str, ...] = ()
    gpu_model: str | None = None  # the cluster's GPUs, e.g. V100
    gpu_capability: tuple[int, int] | None = None  # their CUDA compute capability, e.g. (7, 0)

    def partition(self, gpus: int) -> str:
        return self.gpu_partition if gpus > 0 else self.cpu_partition

    def runtime(self, minutes: int) -> int:
        """A walltime request, capped at what the queue allows."""
        return min(minutes, self.max_runtime)

    def cost(self, runs: int, gpus: int, runtime: int) -> str:
        """The GPU-hours a sweep asks for on first attempts: an upper bound (runs that end early pay less)."""
        minutes = self.runtime(runtime)
        return (
            f"the sweep asks for at most {runs * gpus * minutes / 60:g} GPU-hours on first attempts: "
            f"{runs} runs x {gpus} GPU(s) x {minutes} min"
        )

    def describe(self) -> str:
        return (
            f"{self.name} {self.cluster} ({self.queue} queue): CPU jobs on {self.cpu_partition}, GPU jobs on "
            f"{self.gpu_partition}, account {self.account}, scratch {self.scratch_root} (purged after "
            f"{self.scratch_purge_days} days without access)"
        )


def load_site(site_file: str | Path, environ: Mapping[str, str], project: str) -> Site:
    """Read ``site_file`` and resolve it with the user's environment."""
    path = Path(site_file)
    if not path.is_file():
        raise SiteError(f"site: no site file {path}")
    spec = yaml.safe_load(path.read_text())
    names = spec["environment"]

    def env(key: str) -> str | None:
        return environ.get(names[key]) or None

    account = env("account")
    if not account:
        raise SiteError(f"{names['account']} is not set: export {names['account']}=<your project, e.g. PAS1234>")
    if not ACCOUNT.match(account):
        raise SiteError(f"{names['account']}={account!r} is not a project code (letters, digits, '_', '.', '-')")

    cluster = (env("cluster") or spec["default_cluster"]).lower()
    if cluster in spec.get("retired_clusters", {}):
        raise SiteError(f"{names['cluster']}={cluster}: {spec['retired_clusters'][cluster]}")
    if cluster not in spec["clusters"]:
        raise SiteError(f"{names['cluster']}={cluster}: unknown cluster; allowed: {', '.join(spec['clusters'])}")
    cluster_spec = spec["clusters"][cluster]

    queue = (env("queue") or "normal").lower()
    if queue not in cluster_spec["queues"]:
        raise SiteError(
            f"{names['queue']}={queue}: no such queue on {cluster}; allowed: {', '.join(cluster_spec['queues'])}"
        )
    queue_spec = cluster_spec["queues"][queue]

    gpu_partition = env("gpu_partition") or queue_spec["gpu"]
    gpu_partitions = tuple(cluster_spec["gpu_partitions"])
    if gpu_partition not in gpu_partitions:
        raise SiteError(
            f"{names['gpu_partition']}={gpu_partition}: the train rule asks for GPUs but {cluster} partition "
            f"{gpu_partition!r} has none; GPU partitions: {', '.join(gpu_partitions)}"
        )

    gpu = cluster_spec.get("gpu") or {}
    user = environ.get("USER") or getpass.getuser()
    scratch = env("scratch") or spec["scratch_root"].format(account=account, user=user, project=project)
    return Site(
        name=spec["name"],
        cluster=cluster,
        queue=queue,
        account=account,
        cpu_partition=env("cpu_partition") or queue_spec["cpu"],
        gpu_partition=gpu_partition,
        gpu_partitions=gpu_partitions,
        cores_per_gpu=int(cluster_spec["cores_per_gpu"]),
        max_runtime=int(queue_spec["max_runtime"]),
        scratch_root=Path(scratch),
        scratch_purge_days=int(spec["scratch_purge_days"]),
        modules=tuple(spec.get("modules", ())),
        gpu_model=gpu.get("model"),
        gpu_capability=parse_capability(gpu["compute_capability"]) if "compute_capability" in gpu else None,
    )


def on_scratch(path: str, site: Site | None) -> str:
    """Relative data paths go under the site's scratch root; absolute ones and local runs stay as given."""
    if site is None or Path(path).is_absolute():
        return path
    return str(site.scratch_root / path)
