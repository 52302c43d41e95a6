"""At parse time: the PyTorch that jobs will import must have kernels for the GPUs of the site's cluster.

Otherwise every GPU job would wait in the queue only to die with "no kernel image is available for execution
on the device". The train job checks again on the GPU it gets (:func:`mlpipe.device.choose_device`).
"""

from __future__ import annotations

from collections.abc import Mapping

from mlpipe.cluster.site import Site, SiteError
from mlpipe.torch_build import TorchBuildError, cache_dir, format_capability, install_hint, installed_build

SKIP_ENV = "MLPIPE_SKIP_TORCH_CHECK"  # 1: a test cluster whose GPUs are placeholders (jobs still check theirs)


class TorchCheckError(SiteError):
    """The installed PyTorch cannot run the cluster's GPU jobs."""


def check_torch_for_site(site: Site, gpus: int, environ: Mapping[str, str]) -> None:
    """Stop when train jobs ask for ``gpus`` and the installed torch has no kernel for the cluster's GPUs."""
    if not gpus or site.gpu_capability is None or environ.get(SKIP_ENV) == "1":
        return
    try:
        build = installed_build(cache_dir(environ))
    except TorchBuildError as error:
        raise TorchCheckError(str(error)) from None
    if not build.runs_on(site.gpu_capability):
        gpus_named = f"{site.gpu_model} GPUs" if site.gpu_model else "GPUs"
        raise TorchCheckError(
            f"{site.name} {site.cluster}'s {gpus_named} (compute capability {format_capability(site.gpu_capability)})"
            f" have no kernel in the installed {build.describe()}: {install_hint(site.gpu_capability)}"
        )
