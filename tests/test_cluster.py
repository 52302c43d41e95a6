"""mlpipe.cluster and profiles/osc: dry runs, and a real SLURM cluster (slurmctld, slurmd, slurmdbd + MariaDB
on 127.0.0.1, see local_slurm.py).

The workflow runs with `snakemake --profile profiles/osc`, changed only through the environment
(account, scratch root, and MLPIPE_ALLOW_CPU because the cluster's GPUs are placeholders).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, SMALL_CONFIG_OVERRIDES, copy_workflow, edit_config, job_env, snakemake
from local_slurm import LMOD_INIT, LocalSlurm, missing_requirements, wait_until
from mlpipe.cluster.invocation import Invocation, read_invocation
from mlpipe.cluster.selection import SITE_ENV, SiteChoice, choose_site, record_site
from mlpipe.cluster.site import SiteError, load_site
from mlpipe.io import write_json
from mlpipe.requests.profile import PROFILE_NAME, cost_class

ACCOUNT = "pas0001"


# Only the plugin's first status check is brought forward (40 s by default) so the test takes minutes.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2")


SUBMITTED_RULES = {"download", "preprocess", "train", "evaluate"}  # summarize, plot and all are local rules


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = missing_requirements()
    if missing:
        if os.environ.get("MLPIPE_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM tests required but missing: {', '.join(missing)}")
        pytest.skip(f"needs a local SLURM cluster: missing {', '.join(missing)} (CI installs them)")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), accounts=(ACCOUNT,)).start()
    yield cluster
    cluster.stop()
    assert cluster.running_daemons() == [], "a SLURM daemon outlived the tests"


def osc_env(cluster: LocalSlurm | None, scratch: Path, **overrides: str) -> dict:
    """A user's environment on the local cluster, whose placeholder GPU neither CUDA nor the torch check can see."""
    env = job_env() | {
        "OSC_ACCOUNT": ACCOUNT,
        "OSC_SCRATCH": str(scratch),
        "MLPIPE_ALLOW_CPU": "1",
        "MLPIPE_SKIP_TORCH_CHECK": "1",
    }
    if cluster is not None:
        env["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(workdir: Path, env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def osc_workflow(tmp_path) -> Path:
    workdir = copy_workflow(tmp_path / "project")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES | {"train_job": {"gpus": 1, "runtime": 30, "mem_mb": 1500}})
    return workdir


def test_dry_run_shows_what_each_job_asks_of_osc(osc_workflow, tmp_path):
    result = run(osc_workflow, osc_env(None, tmp_path / "scratch"), "--profile", "profiles/osc", "-n")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "OSC pitzer (normal queue): CPU jobs on cpu, GPU jobs on gpu, account pas0001" in output
    train_jobs = [block for block in output.split("rule ")[1:] if block.startswith("train:")]
    assert len(train_jobs) == 2
    for block in train_jobs:
        assert "slurm_partition=gpu" in block and "gpu=1" in block and "slurm_account=pas0001" in block
        assert "runtime=30" in block and "mem_mb=1500" in block and "threads: 4" in block
        assert "--signal=USR1@300" in block
    preprocess = next(block for block in output.split("rule ")[1:] if block.startswith("preprocess:"))
    assert "slurm_partition=cpu" in preprocess and str(tmp_path / "scratch" / "data" / "processed") in preprocess
    assert "the sweep asks for at most 1 GPU-hours" in output


def test_each_halving_rung_asks_for_the_epochs_it_trains(osc_workflow, tmp_path):
    # What earlier runs of this cost class used: 10 min per epoch, no start-up to speak of.
    measured = {"epoch_seconds": 600.0, "startup_seconds": 0.0, "peak_host_memory_mb": 900.0}
    key = cost_class({"model": "small_cnn", "batch_size": 64}, "digits", 1, "gpu")
    write_json(osc_workflow / "results" / PROFILE_NAME, {key: {"v1": measured}})
    sweep = {"grid": {"lr": [0.01, 0.02, 0.05, 0.1]}, "seeds": [0], "halving": {"eta": 2, "min_epochs": 1}}
    edit_config(
        osc_workflow, {"train": {"epochs": 4}, "train_job": {"runtime": "auto", "mem_mb": "auto"}, "sweep": sweep}
    )
    result = run(osc_workflow, osc_env(None, tmp_path / "scratch"), "--profile", "profiles/osc", "-n")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # epochs x 600 s x 1.5 + the 300 s warning: 20 min for a rung of one epoch, 35 for one of two
    assert "rung 1 (epochs 1-1): 4 train job(s), each asks for 20 min, up to 1400 MB" in output
    assert "rung 2 (epochs 2-2): 2 train job(s), each asks for 20 min" in output
    assert "rung 3 (epochs 3-4): 1 train job(s), each asks for 35 min" in output
    assert "the search asks for at most 2.58333 GPU-hours on first attempts" in output  # (6 x 20 + 35) / 60
    rung_jobs = [block for block in output.split("rule ")[1:] if block.startswith("train_rung:")]
    assert len(rung_jobs) == 4 and all("runtime=20" in block and "--signal=USR1@300" in block for block in rung_jobs)


def train_blocks(output: str) -> list[str]:
    """The dry run's block of each train job."""
    return [block for block in output.split("rule ")[1:] if block.startswith("train:")]


@pytest.mark.parametrize("how", ["--config", "--configfile"])
def test_config_from_the_command_line_keeps_the_osc_mapping(osc_workflow, tmp_path, how):
    # Snakemake replaces a profile's `config:` whole when the command line gives --config.
    if how == "--config":
        extra = ["--config", "results_dir=res2"]
    else:
        (osc_workflow / "more.yaml").write_text("results_dir: res2\n")
        extra = ["--configfile", "more.yaml"]
    scratch = tmp_path / "scratch"
    result = run(osc_workflow, osc_env(None, scratch), "--profile", "profiles/osc", "-n", "-R", "train", *extra)
    assert result.returncode == 0, result.stderr
    blocks = train_blocks(result.stdout)
    assert len(blocks) == 2
    for block in blocks:
        assert "slurm_partition=gpu" in block and "gpu=1," in block and "threads: 4" in block
        assert f"--processed-dir {scratch}/data/processed/digits " in block
        assert f"--state-dir {scratch}/data/checkpoints/lr-" in block
        assert "--run-dir res2/runs/lr-" in block


def test_debug_queue_moves_jobs_to_debug_partitions_with_the_one_hour_cap(osc_workflow, tmp_path):
    edit_config(osc_workflow, {"train_job": {"runtime": 300}})
    result = run(osc_workflow, osc_env(None, tmp_path, OSC_QUEUE="debug"), "--profile", "profiles/osc", "-n")
    assert result.returncode == 0, result.stderr
    assert "slurm_partition=gpudebug" in result.stdout and "slurm_partition=debug-cpu" in result.stdout
    assert "runtime=60," in result.stdout and "runtime=300" not in result.stdout


def test_a_smoke_test_under_the_profile_goes_to_the_debug_partitions(osc_workflow, tmp_path):
    edit_config(osc_workflow, {"train_job": {"runtime": 300}})
    result = run(osc_workflow, osc_env(None, tmp_path), "--profile", "profiles/osc", "-n", "--config", "smoke=true")
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("rule ")[1:]
    rules = {block.split(":")[0] for block in blocks}
    assert {"train", "smoke_step", "preprocess", "download", "evaluate"} <= rules
    for block in blocks:
        if block.startswith("train:"):
            assert "slurm_partition=gpudebug" in block and "runtime=60," in block  # the debug queue's cap
        elif block.startswith("smoke_step:"):
            assert "slurm_partition=gpudebug" in block and "gpu=1," in block
        elif "slurm_partition=" in block:
            assert "slurm_partition=debug-cpu" in block
    assert f"--state-dir {tmp_path}/data/checkpoints/smoke/" in result.stdout
    assert f"--processed-dir {tmp_path}/data/smoke/processed/digits " in result.stdout


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"OSC_ACCOUNT": None},
            "config error: OSC_ACCOUNT is not set: export OSC_ACCOUNT=<your project, e.g. PAS1234>",
        ),
        ({"OSC_CLUSTER": "owens"}, "config error: OSC_CLUSTER=owens: Owens was retired in February 2025"),
        (
            {"OSC_CLUSTER": "summit"},
            "config error: OSC_CLUSTER=summit: unknown cluster; allowed: pitzer, ascend, cardinal",
        ),
        (
            {"OSC_GPU_PARTITION": "cpu"},
            "config error: OSC_GPU_PARTITION=cpu: the train rule asks for GPUs but pitzer partition 'cpu' has none",
        ),
        ({"OSC_QUEUE": "debug", "OSC_CLUSTER": "cardinal"}, "config error: OSC_QUEUE=debug: no such queue on cardinal"),
    ],
)
def test_impossible_settings_stop_the_dry_run_with_one_line(osc_workflow, tmp_path, overrides, message):
    result = run(osc_workflow, osc_env(None, tmp_path, **overrides), "--profile", "profiles/osc", "-n")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


ARCH_LIST = torch.cuda.get_arch_list()


@pytest.mark.skipif(
    "sm_70" in ARCH_LIST or "sm_90" not in ARCH_LIST, reason="needs PyPI's CUDA 13 build (no Volta, Hopper kernels)"
)
def test_the_dry_run_refuses_a_torch_without_kernels_for_the_clusters_gpus(osc_workflow, tmp_path):
    # This machine's torch is PyPI's CUDA 13 build: no kernel for Pitzer's V100s, kernels for Ascend and Cardinal.
    env = osc_env(None, tmp_path, MLPIPE_SKIP_TORCH_CHECK=None, XDG_CACHE_HOME=str(tmp_path / "cache"))
    refused = run(osc_workflow, env, "--profile", "profiles/osc", "-n")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"config error: OSC pitzer's V100 GPUs (compute capability 7.0) have no kernel in the installed torch "
        f"{torch.__version__} (built for {' '.join(ARCH_LIST)}): "
        "install PyTorch's CUDA 12.6 build: make setup TORCH_BUILD=cu126"
    )
    for cluster in ("ascend", "cardinal"):
        accepted = run(osc_workflow, env | {"OSC_CLUSTER": cluster}, "--profile", "profiles/osc", "-n")
        assert accepted.returncode == 0, accepted.stderr
    edit_config(osc_workflow, {"train_job": {"gpus": 0}})  # a sweep on CPUs needs no GPU kernel
    assert run(osc_workflow, env, "--profile", "profiles/osc", "-n").returncode == 0


@pytest.mark.parametrize("profile", [None, "profiles/mine"])
def test_the_slurm_executor_without_a_site_stops_with_one_line(osc_workflow, tmp_path, profile):
    # Without a site nothing maps the train jobs to GPUs and scratch: submitting them anyway would be wrong.
    if profile is None:
        args = ["--executor", "slurm"]
    else:  # a profile of one's own without a site.yaml beside it
        shutil.copytree(osc_workflow / "profiles" / "osc", osc_workflow / profile)
        (osc_workflow / profile / "site.yaml").unlink()
        args = ["--profile", profile]
    result = run(osc_workflow, osc_env(None, tmp_path), *args, "-n")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("config error: the slurm executor needs a site to map jobs onto")
    )
    assert "use --profile profiles/osc, or a profile with a site.yaml beside its config.yaml" in result.stderr


def test_the_site_template_maps_a_dry_run_once_copied(osc_workflow, tmp_path):
    # What a lab elsewhere does: copy the template, set its variables (and edit site.yaml).
    shutil.copytree(osc_workflow / "profiles" / "slurm-template", osc_workflow / "profiles" / "mylab")
    env = osc_env(None, tmp_path, OSC_ACCOUNT=None, OSC_SCRATCH=None, LAB_ACCOUNT="lab42", LAB_SCRATCH=str(tmp_path))
    result = run(osc_workflow, env, "--profile", "profiles/mylab", "-n")
    assert result.returncode == 0, result.stderr
    assert f"MyLab main (normal queue): CPU jobs on cpu, GPU jobs on gpu, account lab42, scratch {tmp_path}" in (
        result.stdout + result.stderr
    )
    blocks = train_blocks(result.stdout)
    assert len(blocks) == 2
    for block in blocks:
        assert "slurm_partition=gpu" in block and "slurm_account=lab42" in block and "nodes=1" in block
        assert "threads: 8" in block and f"--processed-dir {tmp_path}/data/processed/digits " in block
    unset = run(osc_workflow, osc_env(None, tmp_path, OSC_ACCOUNT=None), "--profile", "profiles/mylab", "-n")
    assert unset.stderr.strip().splitlines()[-1] == (
        "config error: LAB_ACCOUNT is not set: export LAB_ACCOUNT=<your project, e.g. mylab-gpu>"
    )


@pytest.mark.skipif(
    "sm_70" in ARCH_LIST or "sm_80" not in ARCH_LIST, reason="needs PyPI's CUDA 13 build (no Volta, Ampere kernels)"
)
def test_the_site_templates_gpu_is_checked_against_the_installed_torch(osc_workflow, tmp_path):
    shutil.copytree(osc_workflow / "profiles" / "slurm-template", osc_workflow / "profiles" / "mylab")
    env = osc_env(
        None,
        tmp_path,
        OSC_ACCOUNT=None,
        LAB_ACCOUNT="lab42",
        MLPIPE_SKIP_TORCH_CHECK=None,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    accepted = run(osc_workflow, env, "--profile", "profiles/mylab", "-n")  # the template's A100s (8.0)
    assert accepted.returncode == 0, accepted.stderr
    site_file = osc_workflow / "profiles" / "mylab" / "site.yaml"
    site_file.write_text(
        site_file.read_text().replace(
            '{model: A100, compute_capability: "8.0"}', '{model: V100, compute_capability: "7.0"}'
        )
    )
    refused = run(osc_workflow, env, "--profile", "profiles/mylab", "-n")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "config error: MyLab main's V100 GPUs (compute capability 7.0) have no kernel in the installed torch "
        )
    )


def test_a_site_file_with_a_mistake_is_named_in_one_line(tmp_path):
    spec = yaml.safe_load((REPO / "profiles" / "slurm-template" / "site.yaml").read_text())
    del spec["clusters"]["main"]["cores_per_gpu"]
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SiteError) as error:
        load_site(tmp_path / "site.yaml", {"LAB_ACCOUNT": "lab42"}, "project")
    assert str(error.value) == (
        f"site file {tmp_path / 'site.yaml'}: clusters.main: 'cores_per_gpu' is a required property"
    )


def test_a_resolved_site_reads_back_the_same():
    site = load_site(REPO / "profiles" / "osc" / "site.yaml", {"OSC_ACCOUNT": "pas0001", "USER": "alice"}, "p")
    choice = SiteChoice(site, "profile", "--profile profiles/osc")
    assert SiteChoice.from_json(choice.to_json(), "submitting Snakemake") == SiteChoice(
        site, "submitting Snakemake", "--profile profiles/osc"
    )


def test_the_site_comes_from_the_config_then_the_submitting_snakemake_then_the_profile_then_the_record(tmp_path):
    environ = {"OSC_ACCOUNT": "pas0001", "USER": "alice"}
    profile = Invocation(profiles={"profiles/osc": REPO / "profiles" / "osc"}, executor="slurm")
    record = tmp_path / "results" / "site.json"

    def choose(config_site=None, invocation=profile, env=environ):
        return choose_site(
            config_site=config_site, invocation=invocation, environ=env, record_file=record, project="p", base_dir=REPO
        )

    from_profile = choose()
    assert from_profile.source == "profile" and from_profile.selected_with == "--profile profiles/osc"
    assert from_profile.site.scratch_root == Path("/fs/scratch/pas0001/alice/p")
    from_config = choose("profiles/osc/site.yaml", env=environ | {"OSC_CLUSTER": "cardinal"})
    assert from_config.source == "config" and from_config.site.cluster == "cardinal"
    # A job step: no profile on its command line, the site resolved by the Snakemake that submitted it.
    job_step = Invocation(profiles={}, executor="slurm-jobstep")
    in_job = choose(invocation=job_step, env={SITE_ENV: from_profile.to_json()})
    assert in_job.site == from_profile.site and in_job.source == "submitting Snakemake"
    with pytest.raises(SiteError, match="the slurm executor needs a site"):
        choose(invocation=Invocation(profiles={}, executor="slurm"))
    local = Invocation(profiles={}, executor="local")
    assert choose(invocation=local).site is None
    record_site(from_profile, record)
    later = choose(invocation=local, env={})  # a later shell: no profile, no OSC_ACCOUNT
    assert later.from_study_record and later.site == from_profile.site


def test_snakemake_s_command_line_is_read_as_snakemake_reads_it(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    assert read_invocation(["pytest", "-q"]) is None  # not Snakemake (e.g. its API): nothing to read
    typed = read_invocation(["/venv/bin/snakemake", "--profile=profiles/osc", "-n", "--config", "results_dir=x"])
    assert typed == Invocation(profiles={"profiles/osc": Path("profiles/osc")}, executor="slurm", runs_jobs=False)
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "profiles/osc")
    from_env = read_invocation(["/venv/lib/python3.11/site-packages/snakemake/__main__.py", "--cores", "1"])
    assert from_env.profiles == {"profiles/osc": Path("profiles/osc")} and from_env.submits_jobs
    assert read_invocation(["snakemake", "--profile", "none", "--cores", "1"]).executor == "local"


def rule_of(comment: str) -> str:
    """The plugin's job comment is rule_<name>[_wildcards_<...>]."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@dataclass
class SlurmStudy:
    workdir: Path
    scratch: Path
    jobs: list[dict]  # the sacct rows of the jobs it submitted

    def by_rule(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for job in self.jobs:
            grouped.setdefault(rule_of(job["Comment"]), []).append(job)
        return grouped


@pytest.fixture(scope="module")
def slurm_study(slurm, tmp_path_factory) -> SlurmStudy:
    """The workflow run once through SLURM with profiles/osc; its scratch data is shared with later tests."""
    root = tmp_path_factory.mktemp("slurm-study")
    workdir = copy_workflow(root / "project")
    edit_config(workdir, SMALL_CONFIG_OVERRIDES | {"train_job": {"gpus": 1, "runtime": 30, "mem_mb": 1500}})
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    # Any --config on the command line (here one that changes nothing) used to drop the OSC mapping.
    result = run(
        workdir,
        osc_env(slurm, root / "scratch"),
        "--profile",
        "profiles/osc",
        "--config",
        "results_dir=results",
        *FAST_STATUS,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    fields = ("JobID", "Partition", "Account", "State", "AllocTRES", "Comment")
    return SlurmStudy(workdir, root / "scratch", [job for job in slurm.sacct(*fields) if job["JobID"] not in before])


def test_every_non_local_job_went_through_slurm_where_it_should(slurm_study):
    by_rule = slurm_study.by_rule()
    assert {rule: len(found) for rule, found in by_rule.items()} == {
        "download": 1,
        "preprocess": 1,
        "train": 2,
        "evaluate": 2,
    }
    assert set(by_rule) == SUBMITTED_RULES
    for job in slurm_study.jobs:
        assert job["State"] == "COMPLETED" and job["Account"] == ACCOUNT
        uses_gpu = "gres/gpu=1" in job["AllocTRES"]
        assert uses_gpu == (rule_of(job["Comment"]) == "train")
        assert job["Partition"] == ("gpu" if uses_gpu else "cpu")


def test_data_and_checkpoints_on_scratch_results_and_logs_in_the_project(slurm_study):
    scratch, workdir = slurm_study.scratch, slurm_study.workdir
    assert (scratch / "data" / "processed" / "digits" / "meta.json").exists()
    checkpoints = sorted(path.name for path in (scratch / "data" / "checkpoints").iterdir())
    assert checkpoints == ["lr-0.05_seed-0", "lr-0.1_seed-0"]
    assert not (workdir / "data").exists()
    assert len(list((workdir / "logs" / "slurm" / "rule_train").rglob("*.log"))) == 2


def test_archive_and_clean_up_typed_with_or_without_the_profile_act_on_the_study(slurm, slurm_study, tmp_path):
    workdir, scratch = slurm_study.workdir, slurm_study.scratch
    jobs_before = len(slurm.sacct("JobID"))
    # With the profile, as the study ran: the archive is made on the login node, nothing is submitted.
    destination = f"archive={{destination: {tmp_path / 'profiled'}, name: study}}"
    profiled = run(workdir, osc_env(slurm, scratch), "--profile", "profiles/osc", "archive", "--config", destination)
    assert profiled.returncode == 0, profiled.stderr[-3000:]
    with tarfile.open(tmp_path / "profiled" / "study.tar.gz") as tar:
        assert "study/site.json" in tar.getnames()
    # A later shell on the login node: no profile, no OSC_* variables. The study's record of its site
    # (results/site.json) gives these commands the scratch paths the study ran with.
    env = osc_env(slurm, scratch, OSC_ACCOUNT=None, OSC_SCRATCH=None)
    # `make archive DEST=...`: the report, then the archive
    assert run(workdir, env, "--report", "results/report.html").returncode == 0
    archived = run(
        workdir, env, "--cores", "1", "archive", "--config", f"archive={{destination: {tmp_path}, name: study}}"
    )
    assert archived.returncode == 0, archived.stderr[-3000:]
    with tarfile.open(tmp_path / "study.tar.gz") as tar:
        assert {"study/report.html", "study/site.json"} <= set(tar.getnames())
    said = archived.stdout + archived.stderr
    assert "localrule archive:" in said and "localrule train:" not in said
    cleaned = run(workdir, env, "--cores", "1", "clean_checkpoints")
    assert cleaned.returncode == 0, cleaned.stderr[-3000:]
    assert list((scratch / "data" / "checkpoints").iterdir()) == []
    assert len(slurm.sacct("JobID")) == jobs_before  # nothing went to SLURM

    # A command that would train without the profile is refused with one line, before anything runs.
    (workdir / "more_seeds.yaml").write_text("sweep: {grid: {lr: [0.05, 0.1]}, seeds: [0, 1]}\n")
    refused = run(workdir, env, "--cores", "2", "--configfile", "more_seeds.yaml")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1] == (
        "config error: results/site.json says this study runs on OSC pitzer (--profile profiles/osc), and this "
        "command would run its evaluate, train jobs here: add --profile profiles/osc"
    )
    assert not (workdir / "results" / "runs" / "lr-0.05_seed-1").exists()


def test_each_run_recorded_its_job_and_what_it_asked_for(slurm_study):
    resources = pd.read_csv(slurm_study.workdir / "results" / "resources.csv")
    assert (resources["partition"] == "gpu").all() and (resources["gpus"] == 1).all() and (resources["cpus"] == 4).all()
    assert (resources["runtime_asked_min"] == 30).all() and (resources["mem_asked_mb"] == 1500).all()
    assert resources["oversized"].str.contains("walltime").all()  # seconds of training in a 30-minute request
    provenance = pd.read_csv(slurm_study.workdir / "results" / "provenance.csv", dtype={"slurm_job_id": str})
    assert set(provenance["slurm_job_id"]) == {job["JobID"] for job in slurm_study.by_rule()["train"]}


def test_results_match_a_local_run(slurm_study, tmp_path):
    # The same config run locally, with as many threads per training job, gives the same numbers.
    local = copy_workflow(tmp_path / "local")
    shutil.copy(slurm_study.workdir / "config" / "config.yaml", local / "config" / "config.yaml")
    snakemake(local, "--cores", "2", "--set-threads", "train=4")
    columns = ["run_id", "lr", "seed", "best_val_acc", "best_epoch", "test_acc"]
    slurm_summary = pd.read_csv(slurm_study.workdir / "results" / "summary.csv")[columns]
    local_summary = pd.read_csv(local / "results" / "summary.csv")[columns]
    pd.testing.assert_frame_equal(slurm_summary, local_summary)


def start_training(workdir: Path, env: dict) -> subprocess.Popen:
    """`snakemake --profile profiles/osc --until train` in the background, for a test to act on its jobs meanwhile."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/osc", "--until", "train", *FAST_STATUS],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def with_own_checkpoints(workdir: Path, overrides: dict) -> None:
    """Configure a workflow copy that shares the study's scratch (its data is there: only training runs) but
    keeps resumable state of its own."""
    edit_config(workdir, overrides | {"checkpoint_root": str(workdir / "checkpoints")})


def test_training_as_a_job_array_and_a_gpu_job_that_sees_no_gpu(slurm, slurm_study, osc_workflow):
    # A halving search (2 configurations x 2 seeds, 1 then 2 epochs): each rung's train jobs are one array.
    halving = {"grid": {"lr": [0.05, 0.1]}, "seeds": [0, 1], "halving": {"eta": 2, "min_epochs": 1}}
    with_own_checkpoints(osc_workflow, {"train": {"epochs": 2}, "sweep": halving})
    env = osc_env(slurm, slurm_study.scratch)
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    # profiles/osc submits the train jobs that are ready together in one sbatch, as tasks of a job array.
    result = run(osc_workflow, env, "--profile", "profiles/osc", "--until", "train", *FAST_STATUS)
    assert result.returncode == 0, result.stderr[-5000:]
    jobs = [
        job for job in slurm.sacct("JobID", "State", "Partition", "AllocTRES", "Comment") if job["JobID"] not in before
    ]
    for rule, count in (("train_rung", 4), ("train", 2)):
        train = [job for job in jobs if rule_of(job["Comment"]) == rule]
        assert len(train) == count and len({job["JobID"].split("_")[0] for job in train}) == 1  # tasks of one array
        assert all("_" in job["JobID"] and job["State"] == "COMPLETED" for job in train)
        assert all(job["Partition"] == "gpu" and "gres/gpu=1" in job["AllocTRES"] for job in train)
    assert not [job for job in jobs if rule_of(job["Comment"]) == "promote"]  # a local rule

    # Without MLPIPE_ALLOW_CPU, a job that asked for a GPU and sees none (the placeholder) stops at once.
    env.pop("MLPIPE_ALLOW_CPU")
    result = run(
        osc_workflow,
        env,
        "--profile",
        "profiles/osc",
        "--forcerun",
        "train_rung",
        "--until",
        "train_rung",
        "--retries",
        "0",
        *FAST_STATUS,
    )  # one failure is the whole story here
    assert result.returncode != 0
    log = (osc_workflow / "results" / "logs" / "train_rung" / "rung-1" / "lr-0.05_seed-0.log").read_text()
    assert log.strip().splitlines()[-1] == (  # the placeholder GPUs hand a job no device (local_slurm.py)
        "error: NoGpuError: this job asked for 1 GPU(s) but CUDA sees none (CUDA_VISIBLE_DEVICES=); "
        "set MLPIPE_ALLOW_CPU=1 to train on the CPU instead"
    )
    assert "epoch 1/" not in log
    failed = [
        job
        for job in slurm.sacct("JobID", "State", "ElapsedRaw", "Comment")
        if rule_of(job["Comment"]) == "train_rung" and job["State"] == "FAILED"
    ]
    assert failed and all(int(job["ElapsedRaw"]) < 60 for job in failed)


def test_a_wrong_account_fails_cleanly_before_anything_runs(slurm, osc_workflow, tmp_path):
    before = len(slurm.sacct("JobID"))
    result = run(
        osc_workflow,
        osc_env(slurm, tmp_path / "scratch", OSC_ACCOUNT="pas9999"),
        "--profile",
        "profiles/osc",
        *FAST_STATUS,
        timeout=300,
    )
    assert result.returncode != 0
    assert "pas9999" in result.stderr and "invalid" in result.stderr.lower()
    assert len(slurm.sacct("JobID")) == before
    assert not (osc_workflow / "results" / "summary.csv").exists()


def attempts_of(slurm: LocalSlurm, rule: str, before: set[str]) -> list[dict]:
    """The sacct rows of the jobs of ``rule`` submitted since ``before``, in order: one per attempt."""
    fields = ("JobID", "State", "ElapsedRaw", "TimelimitRaw", "ReqMem", "NNodes", "AllocTRES", "Comment")
    return [job for job in slurm.sacct(*fields) if job["JobID"] not in before and rule_of(job["Comment"]) == rule]


def resumed_at(log: str, run_id: str) -> tuple[int, int] | None:
    """(epoch, step) of the trainer's "resuming <run> at epoch E, step S" line, if it has one."""
    found = re.search(rf"resuming {re.escape(run_id)} at epoch (\d+), step (\d+)", log)
    return (int(found[1]), int(found[2])) if found else None


def test_walltime_signal_and_scancel_each_checkpoint_and_the_retry_resumes(slurm, slurm_study, osc_workflow):
    # A 2-minute walltime with the warning 60 s before it: SLURM itself sends SIGUSR1 30-60 s into the job
    # (it checks every 30 s and may signal up to 30 s early). The run is far too long to end first, however
    # fast the machine; and without periodic checkpoints a resume can only start from a state saved on a signal.
    with_own_checkpoints(
        osc_workflow,
        {
            "train": {"epochs": 1000, "batch_size": 8, "checkpoint_every": 1000},
            "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]},
            "train_job": {"runtime": 2, "mem_mb": 1000, "signal_before_walltime": 60},
        },
    )
    run_id = "lr-0.05_seed-0"
    train_log = osc_workflow / "results" / "logs" / "train" / f"{run_id}.log"  # each attempt writes it anew
    run_info = osc_workflow / "results" / "runs" / run_id / "run_info.json"

    def resumed_other_than(earlier):
        return lambda: train_log.exists() and resumed_at(train_log.read_text(), run_id) not in (None, earlier)

    def attempts_recorded() -> int:
        return json.loads(run_info.read_text())["attempts"] if run_info.exists() else 0

    before = {job["JobID"] for job in slurm.sacct("JobID")}
    workflow = start_training(osc_workflow, osc_env(slurm, slurm_study.scratch))
    try:
        # The second attempt resumes from what the first saved on SLURM's signal ...
        wait_until(resumed_other_than(None), 400, "the second attempt to resume")
        first_resume = resumed_at(train_log.read_text(), run_id)
        wait_until(lambda: re.search(r"epoch \d+/1000 ", train_log.read_text()), 300, "an epoch after resuming")
        # ... then `scancel` (SIGTERM to every process of the job, as on preemption) stops it too, and the
        # third attempt resumes from what the second saved.
        second_attempt = next(job["JobID"] for job in slurm.queue() if rule_of(job["Comment"]) == "train")
        subprocess.run(["scancel", second_attempt], env=slurm.env, check=True)
        wait_until(resumed_other_than(first_resume), 400, "the third attempt to resume")
        second_resume = resumed_at(train_log.read_text(), run_id)
        # The trainer logs "resuming" a moment before it counts the attempt in run_info.json.
        wait_until(lambda: attempts_recorded() >= 3, 120, "run_info.json to count the third attempt")
        attempts_counted = attempts_recorded()
    finally:
        workflow.send_signal(signal.SIGINT)  # Snakemake cancels the third attempt and ends
        try:
            workflow.wait(120)
        finally:
            workflow.kill()
    assert first_resume > (1, 0) and second_resume > first_resume and attempts_counted == 3

    attempts = attempts_of(slurm, "train", before)
    assert [job["State"].split()[0] for job in attempts[:2]] == ["FAILED", "CANCELLED"]
    assert int(attempts[0]["ElapsedRaw"]) < 60 * int(attempts[0]["TimelimitRaw"])  # stopped before its walltime
    # Each retry asks for 2x, then 3x the memory and walltime of the first attempt.
    assert [job["ReqMem"] for job in attempts] == ["1000M", "2000M", "3000M"]
    assert [job["TimelimitRaw"] for job in attempts] == ["2", "4", "6"]


def test_two_gpus_on_one_node_with_the_site_modules_loaded(slurm, slurm_study, osc_workflow):
    # The site's modules (python/3.12) load in the job (`--sdm env-modules`, Lmod); the stand-in module puts
    # a python without torch first on PATH, as OSC's does, so the job must still run the venv's python.
    # (Snakemake skips env-modules when a frame's file name contains "slurm": this test's folder does not.)
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]}, "train_job": {"gpus": 2}},
    )
    env = osc_env(
        slurm, slurm_study.scratch, BASH_ENV=str(LMOD_INIT), MODULEPATH=str(osc_workflow / "tests" / "modules")
    )
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    result = run(
        osc_workflow,
        env,
        *("--profile", "profiles/osc", "--sdm", "env-modules", "--until", "train", "--verbose", *FAST_STATUS),
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]

    # What was asked for (the one node and the walltime signal show only in the sbatch call) ...
    (sbatch,) = [line for line in result.stderr.splitlines() if "sbatch call:" in line and "rule_train" in line]
    for flag in ("--nodes=1", "--gpus=2", "--cpus-per-task=8", "--mem 1500", "-t 30", "--signal=USR1@300", "-p gpu"):
        assert f" {flag}" in sbatch, flag
    # ... and what SLURM gave: one node, 2 GPUs, 4 cores per GPU, the memory and the walltime.
    (job,) = attempts_of(slurm, "train", before)
    assert job["State"] == "COMPLETED" and job["NNodes"] == "1"
    assert {"cpu=8", "gres/gpu=2", "mem=1500M", "node=1"} <= set(job["AllocTRES"].split(","))
    assert job["TimelimitRaw"] == "30"
    log = (osc_workflow / "results" / "logs" / "train" / "lr-0.05_seed-0.log").read_text()
    assert "(fp32, 2 process(es))" in log  # torchrun's two workers
    info = json.loads((osc_workflow / "results" / "runs" / "lr-0.05_seed-0" / "run_info.json").read_text())
    assert info["provenance"]["modules"] == "python/3.12"


def test_a_hundred_run_sweep_reaches_slurm_in_two_sbatch_calls(slurm, slurm_study, osc_workflow):
    # Train jobs ready together go out as job arrays of at most 50 (profiles/osc). The GPU partition is held
    # down so that the arrays queue without running: only the submissions are counted.
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 1}, "sweep": {"grid": {"lr": [0.01 * i for i in range(1, 11)]}, "seeds": list(range(10))}},
    )
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    slurm.set_partition_state("gpu", "DOWN")
    workflow = start_training(osc_workflow, osc_env(slurm, slurm_study.scratch))
    try:

        def queued_train_tasks() -> list[str]:
            return [job["JobID"] for job in slurm.queue() if rule_of(job["Comment"]) == "train"]

        wait_until(lambda: len(queued_train_tasks()) == 100, 300, "100 queued train tasks")
        tasks = queued_train_tasks()
        assert all("_" in task for task in tasks)  # array tasks (JOBID_INDEX), not single jobs
        submissions = {task.split("_")[0] for task in tasks}  # one array job per sbatch call
    finally:
        workflow.send_signal(signal.SIGINT)  # Snakemake cancels its jobs
        try:
            workflow.wait(120)
        finally:
            workflow.kill()
            subprocess.run(["scancel", "--user=root"], env=slurm.env, check=True)
            slurm.set_partition_state("gpu", "UP")
    assert len(submissions) == 2
    assert not [
        job
        for job in slurm.sacct("JobID", "Comment")
        if job["JobID"] not in before and rule_of(job["Comment"]) != "train"
    ]


def study_status(workdir: Path, env: dict) -> str:
    """`make status` in the study's folder."""
    result = subprocess.run(
        [sys.executable, "scripts/status.py"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_snakemake_killed_while_its_jobs_train_costs_only_the_wait(slurm, slurm_study, osc_workflow):
    # Three runs; the node runs two train jobs at a time, so when the login session dies two train and one waits.
    run_ids = ["lr-0.05_seed-0", "lr-0.1_seed-0", "lr-0.2_seed-0"]
    with_own_checkpoints(
        osc_workflow,
        {"train": {"epochs": 40, "batch_size": 8}, "sweep": {"grid": {"lr": [0.05, 0.1, 0.2]}, "seeds": [0]}},
    )
    env = osc_env(slurm, slurm_study.scratch, MLPIPE_POLL_SECONDS="2")
    runs_dir = osc_workflow / "results" / "runs"
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    controller = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/osc", *FAST_STATUS],
        cwd=osc_workflow,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def training() -> list[str]:
        return [run for run in run_ids if (runs_dir / run / "run_info.json").exists()]

    try:
        wait_until(lambda: len(training()) == 2, 400, "two runs to start training")
        queued = [job for job in slurm.queue() if rule_of(job["Comment"]) == "train"]
        assert sorted(job["State"] for job in queued) == ["PENDING", "RUNNING", "RUNNING"]
    finally:
        controller.send_signal(signal.SIGKILL)  # the login session dies with Snakemake in it
        controller.wait()

    # What `make status` shows meanwhile: which run each array task trains, its attempt, its epochs.
    shown = study_status(osc_workflow, env)
    for run_id in training():
        info = json.loads((runs_dir / run_id / "run_info.json").read_text())
        task = info["provenance"]["slurm_job_id"]
        assert re.search(rf"^{re.escape(run_id)}\s+running\s+{re.escape(task)}\s+1\s+\d+/40 ", shown, re.M), shown
    assert re.search(r"^lr-\S+\s+waiting\s+-", shown, re.M) and "SLURM jobs of this study (squeue): " in shown

    # The README's recovery: unlock, then the same command (it waits for the dead one's jobs first).
    assert run(osc_workflow, env, "--profile", "profiles/osc", "--unlock").returncode == 0
    recovery = run(osc_workflow, env, "--profile", "profiles/osc", "--rerun-incomplete", *FAST_STATUS)
    said = recovery.stdout + recovery.stderr
    assert recovery.returncode == 0, said[-5000:]
    assert "waiting for what an earlier Snakemake of this study left queued or running: SLURM job " in said
    assert "job(s) finished after the Snakemake that started them ended: taken as done" in said

    # Each run trained once, in the jobs the first Snakemake submitted; no epoch was trained twice.
    train_jobs = attempts_of(slurm, "train", before)
    assert len(train_jobs) == 3 and len({job["JobID"].split("_")[0] for job in train_jobs}) == 1
    assert all(job["State"] == "COMPLETED" for job in train_jobs)
    for run_id in run_ids:
        info = json.loads((runs_dir / run_id / "run_info.json").read_text())
        assert info["status"] == "finished" and info["attempts"] == 1, info
        assert len(pd.read_csv(runs_dir / run_id / "metrics.csv")) == 40
    assert len(pd.read_csv(osc_workflow / "results" / "summary.csv")) == 3

    # ... and the study is as if nothing happened: nothing left to do, and an edit still reaches every run.
    dry_run = run(osc_workflow, env, "--profile", "profiles/osc", "-n")
    assert "Nothing to be done" in dry_run.stdout + dry_run.stderr, dry_run.stdout[-3000:]
    # (download and preprocess ran in the study whose scratch this copy shares: their records are there)
    missing = re.search(r"^Rules with missing metadata: (.*)$", dry_run.stdout + dry_run.stderr, re.M)
    assert missing is None or not {"train", "evaluate"} & set(missing[1].split()), missing[1]
    schedule = osc_workflow / "src" / "mlpipe" / "training" / "schedule.py"
    schedule.write_text(schedule.read_text() + "\n# an edit\n")
    edited = run(osc_workflow, env, "--profile", "profiles/osc", "-n", "--quiet", "rules")
    assert re.search(r"^train\s+3$", edited.stdout, re.M), edited.stdout


def asked_mb(job: dict, expected: int) -> bool:
    """Whether the job asked for ``expected`` MB; the SLURM plugin adds a few to an array job (its task list)."""
    return expected <= int(job["ReqMem"].removesuffix("M")) <= expected + 16


def test_a_second_sweep_asks_for_what_the_first_used_and_its_cost_is_foreseen(slurm, slurm_study, osc_workflow):
    # train_job.runtime and mem_mb: auto. The first sweep asks for the unmeasured figures; what its runs used
    # (the registry job keeps it in results/resource_profile.json) sizes the second sweep's requests.
    train_job = {"runtime": "auto", "mem_mb": "auto", "unmeasured_runtime": 30, "unmeasured_mem_mb": 1500}
    with_own_checkpoints(
        osc_workflow,
        {
            "train": {"epochs": 4, "batch_size": 32},
            "sweep": {"grid": {"lr": [0.05, 0.1]}, "seeds": [0]},
            # SLURM's warning comes up to a minute early: a short one leaves these one-minute runs room to finish.
            "train_job": train_job | {"signal_before_walltime": 5},
        },
    )
    env = osc_env(slurm, slurm_study.scratch)
    before = {job["JobID"] for job in slurm.sacct("JobID")}
    first = run(osc_workflow, env, "--profile", "profiles/osc", *FAST_STATUS)
    assert first.returncode == 0, first.stderr[-5000:]
    first_jobs = attempts_of(slurm, "train", before)
    assert [job["TimelimitRaw"] for job in first_jobs] == ["30", "30"]
    assert all(asked_mb(job, 1500) for job in first_jobs)
    used_minutes = max(math.ceil(int(job["ElapsedRaw"]) / 60) for job in first_jobs)
    peaks = [
        json.loads((osc_workflow / "results" / "runs" / run_id / "run_info.json").read_text())["usage"][
            "peak_host_memory_mb"
        ]
        for run_id in ("lr-0.05_seed-0", "lr-0.1_seed-0")
    ]

    edit_config(osc_workflow, {"sweep": {"grid": {"lr": [0.2, 0.3]}}})
    planned = run(osc_workflow, env, "--profile", "profiles/osc", "-n")
    said = planned.stdout + planned.stderr
    assert planned.returncode == 0 and "learned from 2 finished run(s): " in said, said[-3000:]
    expected_hours = float(re.search(r"and should use about ([0-9.e-]+) GPU-hours", said)[1])

    before = {job["JobID"] for job in slurm.sacct("JobID")}
    second = run(osc_workflow, env, "--profile", "profiles/osc", *FAST_STATUS)
    assert second.returncode == 0, second.stderr[-5000:]
    second_jobs = attempts_of(slurm, "train", before)
    assert len(second_jobs) == 2 and all(job["State"] == "COMPLETED" for job in second_jobs)  # none timed out
    for job in second_jobs:
        assert int(job["TimelimitRaw"]) <= 2 * used_minutes, (job, used_minutes)
        assert asked_mb(job, max(1000, math.ceil(max(peaks) * 1.5 / 100) * 100)), job
    # The dry run's estimate of what the sweep would use, against what the report says it used.
    cost = pd.read_csv(osc_workflow / "results" / "cost.csv").set_index("attempts")
    used_hours = cost.loc["all", "gpu_hours_used"]
    assert abs(expected_hours - used_hours) <= 0.2 * used_hours, (expected_hours, used_hours)
    assert cost.loc["first attempts", "gpu_hours_requested"] == pytest.approx(
        sum(int(job["TimelimitRaw"]) for job in second_jobs) / 60
    )
