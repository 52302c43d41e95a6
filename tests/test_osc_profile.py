"""profiles/osc and mlpipe.cluster without a cluster: what dry runs map each job to, and how a site is chosen and
checked. (The jobs on a real SLURM cluster are in test_cluster.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from osc import osc_env, run

from conftest import REPO, edit_config
from mlpipe.cluster.invocation import Invocation, read_invocation
from mlpipe.cluster.selection import SITE_ENV, SiteChoice, choose_site, record_site
from mlpipe.cluster.site import SiteError, load_site
from mlpipe.io import write_json
from mlpipe.requests.profile import PROFILE_NAME, cost_class


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
