# Read config/config.yaml once before Snakemake does: Snakemake's loader reports a YAML syntax error as "Config file
# is not valid JSON or YAML", naming neither line nor column. (A file given with --configfile is read by Snakemake
# before the workflow starts, so an error there keeps Snakemake's message; config/README.md says how to find it.)
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from mlpipe.io import YamlSyntaxError, read_yaml

try:
    if Path("config/config.yaml").is_file():  # a missing one is Snakemake's to report
        read_yaml("config/config.yaml")
except YamlSyntaxError as error:
    sys.exit(f"config error: {error}")
