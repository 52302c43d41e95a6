# Config validation and the small functions that turn the config into paths and targets.
import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

# Before walltime SLURM sends SIGUSR1 to every process of a job step (profiles/osc asks for it).
# Snakemake, which runs each job inside its step, would die of it (Python's default action) and end
# the step before the trainer has saved its checkpoint. Snakemake ignores it, and so do the shells
# it starts (inherited); the trainer installs its own handler.
signal.signal(signal.SIGUSR1, signal.SIG_IGN)

# Every job imports the mlpipe package from this checkout, whatever environment runs it
# (a venv, a conda env from envs/, OSC modules), so the code that runs is the code tracked below.
SOURCE_DIR = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SOURCE_DIR)

from mlpipe.cluster.site import SiteError, load_site, on_scratch
from mlpipe.config import ConfigError, check_batch_split, check_config, load_schema
from mlpipe.layout import MANIFEST_NAME, processed_files
from mlpipe.rule_code import rule_code

try:
    RUNS = check_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
    SITE = load_site(Path(workflow.basedir) / config["site"], os.environ, Path(workflow.basedir).name) if config["site"] else None
    if SITE:  # a local run ignores train_job.gpus
        check_batch_split(RUNS, config["train_job"]["gpus"])
except (ConfigError, SiteError) as error:
    sys.exit(f"config error: {error}")

# Jobs get the checkout's package on PYTHONPATH, and settings that do not change results in the
# environment rather than as params, so that changing them never reruns a finished run: the tracking
# settings (MLPIPE_TRACKING) and whether training reads its data from a copy in the job's node-local
# $TMPDIR (MLPIPE_STAGE_TO_TMPDIR). Snakemake formats the prefix like a shell command, so braces
# meant for the shell are doubled.
_tracking = shlex.quote(json.dumps(config["tracking"], sort_keys=True)).replace("{", "{{").replace("}", "}}")
_stage = config["train_job"]["stage_to_tmpdir"]
_stage = int(_stage is True or (_stage == "auto" and SITE is not None))
shell.prefix(
    f"export PYTHONPATH={shlex.quote(SOURCE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"
    f" MLPIPE_TRACKING={_tracking} MLPIPE_STAGE_TO_TMPDIR={_stage}; "
)

DATASET = config["dataset"]["name"]
SWEPT = list(config["sweep"]["grid"])
RESULTS = Path(config["results_dir"])
DATA_ROOT = Path(on_scratch(config["data_root"], SITE))
RAW_DIR = DATA_ROOT / "raw" / DATASET
PROCESSED_DIR = DATA_ROOT / "processed" / DATASET
CHECKPOINT_ROOT = Path(on_scratch(config["checkpoint_root"], SITE))
ARCHIVE_FILE = str(Path(config["archive"]["destination"]) / f"{config['archive']['name'] or Path(workflow.basedir).name}.tar.gz")
# On a cluster a run asks for its GPUs; locally it uses a GPU when it sees one (0 = no requirement).
TRAIN_GPUS = config["train_job"]["gpus"] if SITE else 0


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


def download_settings():
    """What the download job needs: the source, not the split (so a new split does not fetch again)."""
    dataset = config["dataset"]
    folder = dataset["image_folder"]
    return json.dumps(
        {key: dataset[key] for key in ("name", "mirror", "local_dir", "catalog")}
        | {"image_folder": {"root": folder["root"], "split_folders": folder["split_folders"]}},
        sort_keys=True,
    )


def preprocess_settings():
    """What the preprocess job needs: the split and image decoding, not the source."""
    dataset = config["dataset"]
    folder = dataset["image_folder"]
    return json.dumps(
        {key: dataset[key] for key in ("val_fraction", "test_fraction", "split_seed")}
        | {"image_folder": {key: folder[key] for key in ("size", "channels", "skip_corrupt")}},
        sort_keys=True,
    )


def run_hparams(wildcards):
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def all_runs(name):
    return expand(run_path(name), run=RUNS)


def final_outputs():
    return [
        *rules.summarize.output,
        *rules.registry.output,
        *rules.plot.output,
    ]


def job_resources(mem_mb, runtime, gpus=0):
    """A job's generic needs, memory and walltime growing with each attempt; on a cluster also its partition."""
    resources = {
        "mem_mb": lambda wildcards, attempt: mem_mb * attempt,
        "runtime": lambda wildcards, attempt: SITE.runtime(runtime * attempt) if SITE else runtime * attempt,
        "gpu": gpus,
    }
    if SITE:
        resources["slurm_partition"] = SITE.partition(gpus)
    return resources


def env_modules():
    """Modules a cluster job loads under `--sdm env-modules` (none locally)."""
    return list(SITE.modules) if SITE else []


def train_threads():
    """Cores of a training job: on a cluster those that come with its GPUs; locally one, so runs train side by side."""
    return SITE.cores_per_gpu * max(1, TRAIN_GPUS) if SITE else 1


if SITE:
    logger.info(SITE.describe())
    gpu_hours = len(RUNS) * TRAIN_GPUS * SITE.runtime(config["train_job"]["runtime"]) / 60
    logger.info(
        f"the sweep asks for at most {gpu_hours:g} GPU-hours on first attempts: {len(RUNS)} runs x {TRAIN_GPUS} GPU(s)"
        f" x {SITE.runtime(config['train_job']['runtime'])} min"
    )
