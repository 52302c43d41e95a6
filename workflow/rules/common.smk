# Config validation and the small functions that turn the config into paths and targets.
import json
import re
import shlex
import sys
from pathlib import Path

# Every job imports the mlpipe package from this checkout, whatever environment runs it
# (a venv, a conda env from envs/, OSC modules), so the code that runs is the code tracked below.
SOURCE_DIR = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SOURCE_DIR)
# (Snakemake formats the prefix like a shell command: doubled braces reach the shell as single ones.)
shell.prefix(f"export PYTHONPATH={shlex.quote(SOURCE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from mlpipe.config import ConfigError, check_config, load_schema
from mlpipe.layout import MANIFEST_NAME, processed_files
from mlpipe.rule_code import rule_code

try:
    RUNS = check_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
except ConfigError as error:
    sys.exit(f"config error: {error}")

DATASET = config["dataset"]["name"]
SWEPT = list(config["sweep"]["grid"])
RESULTS = Path(config["results_dir"])
RAW_DIR = Path(config["data_root"]) / "raw" / DATASET
PROCESSED_DIR = Path(config["data_root"]) / "processed" / DATASET
CHECKPOINT_ROOT = Path(config["checkpoint_root"])


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),


def results(path):
    return str(RESULTS / path)


def run_path(name):
    """A file in the folder of each run, with the {run} wildcard left in."""
    return str(RESULTS / "runs" / "{run}" / name)


def log_path(rule, name="{run}"):
    return str(RESULTS / "logs" / rule / f"{name}.log")


def processed_data():
    return [str(path) for path in processed_files(PROCESSED_DIR)]


def run_hparams(wildcards):
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def all_runs(name):
    return expand(run_path(name), run=RUNS)


def final_outputs():
    return [
        results("summary.csv"),
        results("plots/learning_curves.png"),
        results("plots/test_accuracy.png"),
        results("plots/confusion_best.png"),
    ]
