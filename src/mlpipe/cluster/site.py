"""A SLURM site: where each kind of job runs, how long it may run, and where scratch is.

A site is described by a YAML file beside its Snakemake profile (``profiles/osc/site.yaml``;
:mod:`mlpipe.cluster.selection` finds it). Everything here is checked when Snakemake parses the
workflow, so a missing account or an impossible request stops ``snakemake -n`` with one line,
before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpipe.cluster.site_schema import SITE_SCHEMA
from mlpipe.config import ConfigError, validate_config
from mlpipe.io import YamlSyntaxError, read_yaml
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

    def slurm_resources(self, gpus: int) -> dict:
        """What every job asks of SLURM besides its cores, memory and walltime: partition, account and one node
        (each job is one process tree; torchrun's workers must share the node of their GPUs)."""
        return {"slurm_partition": self.partition(gpus), "slurm_account": self.account, "nodes": 1}

    def runtime(self, minutes: int) -> int:
        """A walltime request, capped at what the queue allows."""
        return min(minutes, self.max_runtime)

    def describe(self) -> str:
        return (
            f"{self.name} {self.cluster} ({self.queue} queue): CPU jobs on {self.cpu_partition}, GPU jobs on "
            f"{self.gpu_partition}, account {self.account}, scratch {self.scratch_root} (purged after "
            f"{self.scratch_purge_days} days without access)"
        )

    def to_dict(self) -> dict:
        """The resolved site as JSON-ready values (see :meth:`from_dict`)."""
        return {key: _plain(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping) -> Site:
        """The site :meth:`to_dict` wrote: resolved once, so the same everywhere whatever the environment."""
        return cls(
            **values
            | {
                "gpu_partitions": tuple(values["gpu_partitions"]),
                "scratch_root": Path(values["scratch_root"]),
                "modules": tuple(values["modules"]),
                "gpu_capability": tuple(values["gpu_capability"]) if values.get("gpu_capability") else None,
            }
        )


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def load_site(site_file: str | Path, environ: Mapping[str, str], project: str, prefer_queue: str | None = None) -> Site:
    """Read ``site_file`` and resolve it with the user's environment; ``prefer_queue`` (a smoke test's ``debug``)
    replaces the queue the environment selects on a cluster that has it."""
    path = Path(site_file)
    if not path.is_file():
        raise SiteError(f"site: no site file {path}")
    try:
        spec = validate_config(read_yaml(path), SITE_SCHEMA)
    except YamlSyntaxError as error:  # it names the file and the line
        raise SiteError(f"site file {error}") from None
    except ConfigError as error:
        raise SiteError(f"site file {path}: {error}") from None
    names = spec["environment"]

    def env(key: str) -> str | None:
        return environ.get(names[key]) or None

    account = env("account")
    if not account:
        example = f", e.g. {spec['account_example']}" if spec["account_example"] else ""
        raise SiteError(f"{names['account']} is not set: export {names['account']}=<your project{example}>")
    if not ACCOUNT.match(account):
        raise SiteError(f"{names['account']}={account!r} is not a project code (letters, digits, '_', '.', '-')")

    cluster = (env("cluster") or spec["default_cluster"]).lower()
    if cluster in spec["retired_clusters"]:
        raise SiteError(f"{names['cluster']}={cluster}: {spec['retired_clusters'][cluster]}")
    if cluster not in spec["clusters"]:
        raise SiteError(f"{names['cluster']}={cluster}: unknown cluster; allowed: {', '.join(spec['clusters'])}")
    cluster_spec = spec["clusters"][cluster]

    queue = (env("queue") or "normal").lower()
    if prefer_queue in cluster_spec["queues"]:
        queue = prefer_queue
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

    gpu = cluster_spec.get("gpu", {})
    user = environ.get("USER") or getpass.getuser()
    try:
        scratch = env("scratch") or spec["scratch_root"].format(account=account, user=user, project=project)
    except (KeyError, IndexError, ValueError) as error:
        raise SiteError(
            f"site file {path}: scratch_root: {spec['scratch_root']!r} may only use {{account}}, {{user}} and "
            f"{{project}} ({type(error).__name__}: {error})"
        ) from None
    return Site(
        name=spec["name"],
        cluster=cluster,
        queue=queue,
        account=account,
        cpu_partition=env("cpu_partition") or queue_spec["cpu"],
        gpu_partition=gpu_partition,
        gpu_partitions=gpu_partitions,
        cores_per_gpu=cluster_spec["cores_per_gpu"],
        max_runtime=queue_spec["max_runtime"],
        scratch_root=Path(scratch),
        scratch_purge_days=spec["scratch_purge_days"],
        modules=tuple(spec["modules"]),
        gpu_model=gpu.get("model"),
        gpu_capability=parse_capability(gpu["compute_capability"]) if "compute_capability" in gpu else None,
    )


def on_scratch(path: str, site: Site | None) -> str:
    """Relative data paths go under the site's scratch root; absolute ones and local runs stay as given."""
    if site is None or Path(path).is_absolute():
        return path
    return str(site.scratch_root / path)
