# Read the config files once more with mlpipe's strict loader (mlpipe.io.read_yaml) before Snakemake's merged
# config is used. Snakemake's loader reports a YAML syntax error in config/config.yaml as "Config file is not valid
# JSON or YAML", naming neither line nor column, and keeps the later of a key written twice without a word. (A file
# given with --configfile is read by Snakemake before the workflow starts, so a syntax error there keeps Snakemake's
# message; config/README.md says how to find it. A key written twice there is refused here.)
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from mlpipe.io import YamlSyntaxError, read_yaml


def shown_path(path):
    """A path as the user would type it: relative to the workflow folder when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


try:
    if Path("config/config.yaml").is_file():  # a missing one is Snakemake's to report
        read_yaml("config/config.yaml")
    # What each override says, in the order Snakemake merged them on top of config/config.yaml: the --configfile
    # files, then --config (mlpipe.config.replace_overridden_grid reads them).
    CONFIG_OVERRIDES = [
        read_yaml(shown_path(path)) or {}
        for path in workflow.config_settings.configfiles
    ] + [dict(workflow.config_settings.config)]
except YamlSyntaxError as error:
    sys.exit(f"config error: {error}")
