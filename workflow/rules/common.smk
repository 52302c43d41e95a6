# Config validation and the small functions that turn the config into paths and targets.
import hashlib
import json
import os
import re
import shlex
import signal
import sys
import tempfile
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

# Before walltime SLURM sends SIGUSR1 to every process of a job step (profiles/osc asks for it).
# Snakemake, which runs each job inside its step, would die of it (Python's default action) and end
# the step before the trainer has saved its checkpoint. Snakemake ignores it, and so do the shells
# it starts (inherited); the trainer installs its own handler.
signal.signal(signal.SIGUSR1, signal.SIG_IGN)

# Every job imports the mlpipe package from this checkout, whatever environment runs it
# (a venv, a conda env from envs/, OSC modules), so the code that runs is the code checksummed below.
SOURCE_DIR = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SOURCE_DIR)

from mlpipe import config as mlpipe_config
from mlpipe.cluster.invocation import InvocationError, read_invocation
from mlpipe.cluster.selection import (
    SITE_ENV,
    choose_site,
    record_site,
    refuse_cluster_jobs,
)
from mlpipe.cluster.site import SiteError, on_scratch
from mlpipe.cluster.slurm_plugins import patch_slurm_plugins
from mlpipe.cluster.torch_check import check_torch_for_site
from mlpipe.collector import settle_parsed_workflow
from mlpipe.config import ConfigError
from mlpipe.layout import (
    HISTORY_DIR_NAME,
    MANIFEST_NAME,
    META_NAME,
    RUN_FILE_NAMES,
    SITE_RECORD_NAME,
    processed_files,
)
from mlpipe.history.passes import BaselineError, check_baseline, load_tags
from mlpipe.preprocess.fractions import check_fractions, split_basis
from mlpipe.preprocess.split import SplitError
from mlpipe.recovery.orphans import find_leftovers, wait_for_leftovers
from mlpipe.recovery.snakemake_state import (
    JobsChangedError,
    folder_locked,
    take_over_earlier_jobs,
)
from mlpipe.hparams import hparams_digest, without_budget
from mlpipe.requests.estimate import describe_requests, plan_requests
from mlpipe.requests.profile import PROFILE_NAME
from mlpipe.requests.sources import gather_measurements
from mlpipe.rule_code import rule_code
from mlpipe.search.halving import describe_rung_requests, runs_of
from mlpipe.smoke.plan import SMOKE_FOLDER, STEP_MINUTES, STEPS_FOLDER, miniature
from mlpipe.user_sources import source_parameter

PROJECT = Path(workflow.basedir).name
DEPLOYMENT = (
    workflow.deployment_settings.deployment_method
)  # --sdm: conda, env-modules, ...
CONDA_ENVS = DeploymentMethod.CONDA in DEPLOYMENT

try:
    mlpipe_config.replace_overridden_grid(config, CONFIG_OVERRIDES)
    RUNS = mlpipe_config.check_config(
        config,
        mlpipe_config.load_schema(
            workflow.source_path("../schemas/config.schema.yaml")
        ),
    )
    # `smoke: true` (make smoke): the study in miniature, in folders of its own (mlpipe.smoke).
    SMOKE = config["smoke"]
    RUNS, PROBES = miniature(config, RUNS) if SMOKE else (RUNS, {})
    # sweep.halving: the rungs (mlpipe.search.halving); None: every run trains train.epochs (halving.smk).
    LADDER = None if SMOKE else mlpipe_config.study_ladder(config, RUNS)
    INVOCATION = read_invocation(sys.argv)
    SITE_RECORD = Path(config["results_dir"]) / SITE_RECORD_NAME
    SITE_CHOICE = choose_site(
        config_site=config["site"],
        invocation=INVOCATION,
        environ=os.environ,
        record_file=SITE_RECORD,
        project=PROJECT,
        base_dir=Path(workflow.basedir),
        prefer_queue=(
            "debug" if SMOKE else None
        ),  # the site's debug partitions, where the cluster has them
    )
    SITE = SITE_CHOICE.site
    check_baseline(
        config["compare"]["baseline"],
        load_tags(Path(config["results_dir"]) / HISTORY_DIR_NAME),
    )
    if SITE:  # a local run ignores train_job.gpus
        mlpipe_config.check_batch_split(RUNS, config["train_job"]["gpus"])
    # Jobs import this environment's torch (under --sdm conda their own, and each job checks its GPU).
    if SITE and workflow.is_main_process and not CONDA_ENVS:
        check_torch_for_site(SITE, config["train_job"]["gpus"], os.environ)
except (ConfigError, SiteError, InvocationError, BaselineError) as error:
    sys.exit(f"config error: {error}")
if INVOCATION:
    patch_slurm_plugins(INVOCATION.executor)
if SITE:
    # Jobs submitted with this environment (sbatch --export=ALL) parse the workflow again without the
    # profile: they map paths and resources the same way from the site resolved here.
    os.environ[SITE_ENV] = SITE_CHOICE.to_json()

DATASET = config["dataset"]["name"]
SWEPT = mlpipe_config.swept_keys(config)
TRAIN_EPOCHS = config["train"]["epochs"]
RESULTS = Path(config["results_dir"])
DATA_ROOT = Path(on_scratch(config["data_root"], SITE))
RAW_DIR = DATA_ROOT / "raw" / DATASET
PROCESSED_DIR = DATA_ROOT / "processed" / DATASET
CHECKPOINT_ROOT = Path(on_scratch(config["checkpoint_root"], SITE))
HISTORY_DIR = RESULTS / HISTORY_DIR_NAME
ARCHIVE_FILE = str(mlpipe_config.archive_file(config["archive"], PROJECT))

# After a Snakemake died (a killed tmux, a login node's reboot), what it left queued or running ends first
# and only then is anything planned: no run is submitted again while its first job may still train it.
# On a site its SLURM jobs are asked for (squeue); locally, trainers that still hold their runs.
if workflow.is_main_process and INVOCATION is not None and not SMOKE:

    def leftovers():
        state_dirs = {} if SITE else {run: CHECKPOINT_ROOT / run for run in RUNS}
        return find_leftovers(state_dirs, Path.cwd() if SITE else None, os.environ)

    if INVOCATION.runs_jobs and not folder_locked(
        Path.cwd()
    ):  # a locked folder: Snakemake stops anyway
        wait_for_leftovers(
            leftovers, logger.info, float(os.environ.get("MLPIPE_POLL_SECONDS", "30"))
        )
    elif not INVOCATION.runs_jobs and (found := leftovers()):
        logger.info(
            f"an earlier Snakemake of this study left queued or running: {found.describe()}; "
            "a run without -n waits for them before it submits anything"
        )

# Checksums of the lab's own code, labelled (mlpipe.user_sources): a model file per model of the sweep, the
# Dataset file of dataset custom; '' for built-ins. As rule params, editing one reruns the jobs that run it.
MODEL_CODE = {
    model: source_parameter(model) for model in {run["model"] for run in RUNS.values()}
}
DATASET_CODE = (
    source_parameter(config["dataset"]["custom"]["class"])
    if DATASET == "custom"
    else ""
)
# Split fractions that the data preprocessed last cannot take stop here, before Snakemake deletes the processed
# arrays to make them again (mlpipe.preprocess.fractions).
try:
    check_fractions(
        PROCESSED_DIR,
        split_basis(RAW_DIR, mlpipe_config.preprocess_settings(config["dataset"])),
        config["dataset"]["val_fraction"],
        config["dataset"]["test_fraction"],
    )
except SplitError as error:
    sys.exit(f"config error: {error}")
# On a cluster a run asks for its GPUs; locally it uses a GPU when it sees one (0 = no requirement).
TRAIN_GPUS = config["train_job"]["gpus"] if SITE else 0


# What each train job asks a site for: configured, or with `auto` learned from what runs of its cost class
# used (mlpipe.requests). Locally nothing is enforced: the figures for unmeasured runs stand in.
# Under successive halving, each rung's jobs ask for the epochs they train: {rung's last epoch: {run: request}}.
def rung_hparams(rung):
    """Every run's hyperparameters with the epochs a job of rung ``rung`` trains (all of them without halving)."""
    if LADDER is None:
        return RUNS
    epochs = LADDER.rungs[rung] - LADDER.start(rung)
    return {run: {**hparams, "epochs": epochs} for run, hparams in RUNS.items()}


if SITE:
    _measured = gather_measurements(
        RESULTS,
        PROCESSED_DIR,
        RESULTS / SMOKE_FOLDER,
        DATA_ROOT / SMOKE_FOLDER / "processed" / DATASET,
        config["dataset"],
    )
    REQUESTS = {
        epochs: plan_requests(
            rung_hparams(rung),
            DATASET,
            TRAIN_GPUS,
            SITE.partition(TRAIN_GPUS),
            config["train_job"],
            _measured,
        )
        for rung, epochs in enumerate(
            LADDER.rungs if LADDER else [config["train"]["epochs"]]
        )
    }

# Jobs get the checkout's package on PYTHONPATH, and settings that do not change results in the
# environment rather than as params, so that changing them never reruns a finished run: the tracking
# settings and whether training reads its data from a copy in the job's node-local $TMPDIR.
# Snakemake formats the prefix like a shell command, so braces meant for the shell are doubled.
_job_environment = {
    "MLPIPE_TRACKING": json.dumps(
        mlpipe_config.tracking_settings(config["tracking"], RESULTS, PROJECT)
    ),
    "MLPIPE_STAGE_TO_TMPDIR": str(
        int(mlpipe_config.stage_to_tmpdir(config["train_job"], SITE is not None))
    ),
    # The budget of a halving rung's run, whose params leave it out (halving.smk).
    "MLPIPE_TRAIN_EPOCHS": str(config["train"]["epochs"]),
}
_exports = " ".join(
    f"{name}={shlex.quote(value)}" for name, value in _job_environment.items()
)
# Under `--sdm env-modules` a job first loads the site's modules; a python/3.12 module puts its own
# python first on PATH, which would shadow the venv that runs Snakemake (and has torch). So the venv's
# bin folder goes first again. (Not with conda: there the rule's conda env must win.)
_venv_first = (
    f"PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH "
    if SITE and DeploymentMethod.ENV_MODULES in DEPLOYMENT and not CONDA_ENVS
    else ""
)
shell.prefix(
    f"export {_venv_first}PYTHONPATH={shlex.quote(SOURCE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}} "
    + _exports.replace("{", "{{").replace("}", "}}")
    + "; "
)


wildcard_constraints:
    run=r"[^/]+",


def results(path):
    return str(RESULTS / path)


def run_file(kind):
    """A file of each run's folder (see mlpipe.layout), with the {run} wildcard left in."""
    return str(RESULTS / "runs" / "{run}" / RUN_FILE_NAMES[kind])


def folder(path):
    """A folder as a rule parameter, with the job's wildcards filled in; the files inside are named by mlpipe.layout.

    A function rather than a string: Snakemake's linter takes a string that prefixes a rule's files for a path
    that a storage plugin would rewrite, which cannot happen here (mlpipe runs on a shared filesystem).
    """
    return lambda wildcards: str(path).format(**wildcards)


def final_runs():
    """The runs trained to train.epochs: every run, or under successive halving the last rung's (halving.smk)."""
    return list(RUNS) if LADDER is None else runs_in_rung(LADDER.last)


def all_runs(kind):
    """A file of each run trained to the end; under halving known once the last promotion is (an input function)."""
    if LADDER is None:
        return expand(run_file(kind), run=RUNS)
    return lambda wildcards: expand(run_file(kind), run=final_runs())


def run_ids_of(name):
    """A job's run ids, from its input ``name`` (one file per run folder): the runs of all_runs."""
    return lambda wildcards, input: json.dumps(
        [Path(path).parent.name for path in input[name]]
    )


def log_path(rule, name="{run}"):
    return str(RESULTS / "logs" / rule / f"{name}.log")


def processed_data():
    """Every file preprocess writes, meta.json last."""
    return [str(path) for path in processed_files(PROCESSED_DIR)]


def processed_dataset():
    """The processed dataset as one input: its meta.json, written last, holds the checksum of every array,
    so a job that depends on it reruns whenever an array changes. (One input per job rather than a pair of
    arrays per split keeps Snakemake's work on a sweep of thousands of runs down.)"""
    return str(PROCESSED_DIR / META_NAME)


def run_hparams(wildcards):
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def model_code():
    """The checksum of a run's model files when it is a lab's own class, so editing them reruns only its runs:
    one value when the sweep has one model, else looked up per run."""
    if len(MODEL_CODE) == 1:
        return next(iter(MODEL_CODE.values()))
    return lambda wildcards: MODEL_CODE[RUNS[wildcards.run]["model"]]


def paths(*outputs):
    """Other rules' outputs as plain paths, for a rule's input.

    Given the output objects themselves, Snakemake hashes each of the job's list-valued inputs (one file per
    run) once for every one of its input files: quadratic in the number of runs for plot and archive.
    """
    return [str(path) for path in outputs]


def final_outputs():
    return paths(
        *rules.summarize.output,
        *rules.registry.output,
        *rules.plot.output,
        *rules.compare.output,
        *expand(results(f"{STEPS_FOLDER}/{{probe}}.json"), probe=PROBES),  # smoke.smk
        *(rules.ladder.output if LADDER else []),  # halving.smk
    )


def hparams_digests(wildcards):
    """A digest of each run's hyperparameters, for the tag job to check that every run is up to date: under
    successive halving, the finalists once the last promotion is known."""
    runs = list(RUNS) if LADDER is None else known_finalists()
    return json.dumps({run: hparams_digest(RUNS[run]) for run in runs})


# Snakemake's default temp folder of a job is the expression "system_tmpdir", which it compiles and evaluates
# again for every job: a tenth of the dry run of a 1,000-run sweep. Locally each job's resources are evaluated
# in this process, so its value, computed once here, is the same folder. Left to Snakemake when
# --default-resources is given.
LOCAL_TMPDIR = (
    {"tmpdir": tempfile.gettempdir()}
    if workflow.resource_settings.default_resources is None
    else {}
)


def job_resources(mem_mb, runtime, gpus=0, signal_before_walltime=None):
    """A job's generic needs; on a cluster with memory and walltime growing with each attempt, and its
    partition, account and node, and the signal that asks it to checkpoint before its walltime.

    ``mem_mb`` and ``runtime`` are numbers, or functions of the job's wildcards (a train job's learned request).
    """
    if not SITE:
        # Nothing enforces memory or walltime locally: plain numbers, which also spare Snakemake a function
        # call per job.
        return {"mem_mb": mem_mb, "runtime": runtime, "gpu": gpus, **LOCAL_TMPDIR}

    def first_attempt(value, wildcards):
        return value(wildcards) if callable(value) else value

    resources = {
        "mem_mb": lambda wildcards, attempt: first_attempt(mem_mb, wildcards) * attempt,
        "runtime": lambda wildcards, attempt: SITE.runtime(
            first_attempt(runtime, wildcards) * attempt
        ),
        "gpu": gpus,
        **SITE.slurm_resources(gpus),
    }
    if signal_before_walltime:
        resources["slurm_extra"] = f"--signal=USR1@{signal_before_walltime}"
    return resources


def train_request(field):
    """A train job's ``minutes`` or ``mem_mb`` (a halving rung's: the job's rung ends at its {epochs} wildcard): per
    run on a site, the unmeasured figure (or the configured one) locally."""
    if SITE:
        return lambda wildcards: getattr(
            REQUESTS[int(getattr(wildcards, "epochs", config["train"]["epochs"]))][
                wildcards.run
            ],
            field,
        )
    configured = config["train_job"]["runtime" if field == "minutes" else "mem_mb"]
    unmeasured = config["train_job"][
        "unmeasured_runtime" if field == "minutes" else "unmeasured_mem_mb"
    ]
    return unmeasured if configured == "auto" else configured


def env_modules():
    """Modules a cluster job loads under `--sdm env-modules` (none locally)."""
    return list(SITE.modules) if SITE else []


def train_threads():
    """Cores of a training job: on a cluster those that come with its GPUs; locally one, so runs train side by side."""
    return SITE.cores_per_gpu * max(1, TRAIN_GPUS) if SITE else 1


if SITE:
    logger.info(SITE.describe())
    if SITE_CHOICE.from_study_record:
        logger.info(
            f"(recorded in {SITE_RECORD} by the run with {SITE_CHOICE.selected_with})"
        )
    if LADDER is None:  # under halving, per rung (halving.smk)
        for line in describe_requests(
            RUNS, REQUESTS[config["train"]["epochs"]], TRAIN_GPUS
        ):
            logger.info(line)


# Successive halving (halving.smk): the plan, and on a site what each rung's jobs ask for.
if LADDER:
    if workflow.is_main_process:
        logger.info(LADDER.describe(len(config["sweep"]["seeds"])))
        if SITE:
            for line in describe_rung_requests(
                LADDER, REQUESTS, len(config["sweep"]["seeds"]), TRAIN_GPUS
            ):
                logger.info(line)


def rung_record(epochs, run="{run}"):
    return results(f"halving/rung-{epochs}/{run}.json")


def runs_in_rung(rung):
    """The runs of rung ``rung`` (an index into LADDER.rungs): every run in the first, then the runs of the
    configurations the checkpoint after the rung before promoted."""
    if rung == 0:
        return list(RUNS)
    return promoted_runs(
        checkpoints.promote.get(epochs=str(LADDER.rungs[rung - 1])).output[0]
    )


def known_finalists():
    """The last rung's runs if the last promotion has been made, read without waiting for it; else every run."""
    promotion = Path(rung_promotion(LADDER.rungs[-2]))
    return promoted_runs(promotion) if promotion.exists() else list(RUNS)


def promoted_runs(promotion):
    """The runs of the configurations a promotion's file names."""
    return runs_of(json.loads(Path(promotion).read_text())["promoted"], RUNS)


def rung_promotion(epochs):
    return results(f"halving/promoted-{epochs}.json")


def previous_rung(wildcards):
    """The record of the rung a run continues from (none for the first): the state it left is where this one
    starts."""
    if LADDER is None:
        return []
    rung = (
        LADDER.index(int(wildcards.epochs))
        if hasattr(wildcards, "epochs")
        else LADDER.last
    )
    return [rung_record(LADDER.rungs[rung - 1], wildcards.run)] if rung else []


def file_digest(files):
    """A short checksum of the contents of those of ``files`` (one path, or a list) that exist."""
    digest = hashlib.sha256()
    for path in map(Path, [files] if isinstance(files, str) else files):
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def hparams_without_epochs(wildcards):
    """A rung's hyperparameters: the budget (train.epochs, which sets the learning-rate schedule) reaches the job
    in its environment, so that raising it keeps every finished rung."""
    return json.dumps(without_budget(RUNS[wildcards.run]), sort_keys=True)


onstart:
    # Runs when jobs are about to start (not in a dry run), in the Snakemake the user started.
    try:
        if SITE_CHOICE.records_the_study:
            record_site(SITE_CHOICE, SITE_RECORD)
        elif SITE_CHOICE.from_study_record and workflow.local_exec:
            # The rules a cluster profile submits: all but the Snakefile's localrules (workflow.is_local
            # cannot tell here: in a local run it says every rule is local).
            refuse_cluster_jobs(
                SITE_CHOICE,
                SITE_RECORD,
                (
                    job.rule.name
                    for job in workflow.dag.needrun_jobs()
                    if job.rule.name not in workflow._localrules
                ),
            )
        # Jobs of an earlier Snakemake that finished after it died count as done, as if it had lived.
        if not SMOKE:
            take_over_earlier_jobs(workflow, logger.info)
    except (SiteError, JobsChangedError) as error:
        sys.exit(f"config error: {error}")
