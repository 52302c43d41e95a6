"""Parse time of the workflow: `snakemake -n` on the default sweep, with the built-in model and with a lab's own.

A login node parses the whole workflow on every command (`snakemake -n`, a submission, `--report`), so naming
a model class of one's own must not make that slow: its file is read with `ast` and checksummed, never imported
(no torch). Copies the workflow into a fresh temp folder, times `snakemake -n --quiet` REPEATS times each way
(minimum and median, as other processes on a shared machine add noise), and times the config check alone
in this process. Target (issue 10): under 2 s for the default sweep with a user model named.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from workflow_copy import copy_workflow, measured_on, user_environment

USER_MODEL = "examples/vehicle_sensors/src/models/model.py:MyModel"


def dry_run_seconds(workdir: Path, env: dict, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", *args],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def config_check_seconds(workdir: Path, model: str) -> float:
    """The config check and the model checksum alone, as common.smk runs them (best of 5)."""
    from mlpipe.config import check_config, load_schema
    from mlpipe.user_sources import source_checksum

    schema = load_schema(workdir / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["train"]["model"] = model
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            runs = check_config(yaml.safe_load(yaml.safe_dump(config)), schema)
            {source_checksum(hparams["model"]) for hparams in runs.values()}
            times.append(time.perf_counter() - started)
    finally:
        os.chdir(previous)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(measured_on())
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        workdir = Path(scratch)
        copy_workflow(workdir)
        (workdir / "user-model.yaml").write_text(yaml.safe_dump({"train": {"model": USER_MODEL}}))
        env = user_environment()
        env["PYTHONPATH"] = str(workdir / "src")
        sys.path.insert(0, str(workdir / "src"))
        cases = {"built-in model (small_cnn)": (), f"user model ({USER_MODEL})": ("--configfile", "user-model.yaml")}
        dry_run_seconds(workdir, env)  # warm the file cache
        timings = {case: [] for case in cases}
        for _ in range(args.repeats):  # interleaved: a busy neighbour slows both cases alike
            for case, extra in cases.items():
                timings[case].append(dry_run_seconds(workdir, env, *extra))
        checks = {model: config_check_seconds(workdir, model) for model in ("small_cnn", USER_MODEL)}

    print(f"snakemake -n, default sweep (4 runs), {args.repeats} times each, on {os.cpu_count()} cores:")
    for case, seconds in timings.items():
        print(f"  {case:70s} min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s   (target < 2 s)")
    print("config check and model checksums alone (in process, best of 5):")
    for model, seconds in checks.items():
        print(f"  {model:70s} {1000 * seconds:.1f} ms")


if __name__ == "__main__":
    main()
