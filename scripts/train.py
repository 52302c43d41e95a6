"""Train stage: train one run; with --gpus N > 1, relaunch itself under torchrun (one process per GPU).

The environment is read here (mlpipe.device only names CUDA_VISIBLE_DEVICES in an error): torchrun's rank
variables, the tracking settings and the $TMPDIR switch that the workflow sets, SLURM's job, and MLPIPE_ALLOW_CPU.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from mlpipe.cli import run_main

TRACKING_ENV = "MLPIPE_TRACKING"  # the config's tracking section, resolved (mlpipe.config.tracking_settings)
STAGE_ENV = "MLPIPE_STAGE_TO_TMPDIR"  # 1: read the data from a copy in the job's $TMPDIR
EPOCHS_ENV = "MLPIPE_TRAIN_EPOCHS"  # the budget of a halving rung's run, whose --hparams leave it out


def with_budget(hparams: dict, environ) -> dict:
    """``hparams`` with their ``epochs``: given, or for a halving rung the study's budget from the environment."""
    if "epochs" in hparams:
        return hparams
    if not environ.get(EPOCHS_ENV, "").isdigit():
        raise SystemExit(f"--hparams leave out epochs and {EPOCHS_ENV} does not give them")
    return {**hparams, "epochs": int(environ[EPOCHS_ENV])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--hparams", type=json.loads, required=True, help="the run's hyperparameters, as JSON")
    parser.add_argument("--processed-dir", type=Path, required=True)
    for name in ("metrics", "best", "last", "run-config"):
        parser.add_argument(f"--{name}", type=Path, help="declared output, written when training ends")
    parser.add_argument("--run-dir", type=Path, required=True, help="the run's folder: run_info.json, tensorboard/")
    parser.add_argument("--state-dir", type=Path, required=True, help="resumable state; kept when the job fails")
    parser.add_argument("--history-dir", type=Path, default=None, help="where the finished version is kept")
    parser.add_argument("--until-epoch", type=int, default=None, help="a halving rung: stop after this epoch")
    parser.add_argument("--rung-record", type=Path, default=None, help="a halving rung's output (with --until-epoch)")
    parser.add_argument("--budget-may-grow", action="store_true", help="resume a state saved under other epochs")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs the job asked for (0: use one if present)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--request-mem-mb", type=int, default=None, help="memory the job asked for (recorded)")
    parser.add_argument(
        "--request-runtime", type=int, default=None, help="walltime in minutes the job asked for (recorded)"
    )
    args = parser.parse_args()
    if (args.until_epoch is None) != (args.rung_record is None):
        parser.error("--until-epoch and --rung-record go together")
    if args.rung_record is None and None in (args.metrics, args.best, args.last, args.run_config):
        parser.error("--metrics, --best, --last and --run-config are required (unless a rung: --rung-record)")

    from dataclasses import replace

    from mlpipe.device import allow_cpu_from_env
    from mlpipe.tracking.loggers import DEFAULT_TRACKING
    from mlpipe.tracking.provenance import scheduler_job, scheduler_request
    from mlpipe.training.distributed import launched_by_torchrun
    from mlpipe.training.launch import relaunch_under_torchrun, with_options
    from mlpipe.training.loop import TrainJob, check_device, holding_the_run, train_run
    from mlpipe.training.outputs import TrainOutputs
    from mlpipe.training.staging import stage_processed

    job = TrainJob(
        run_id=args.run_id,
        hparams=with_budget(args.hparams, os.environ),
        processed_dir=args.processed_dir,
        outputs=TrainOutputs(args.metrics, args.best, args.last, args.run_config, args.run_dir),
        state_dir=args.state_dir,
        gpus=args.gpus,
        threads=args.threads,
        allow_cpu=allow_cpu_from_env(os.environ),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        scheduler_job=scheduler_job(os.environ),
        requested=scheduler_request(args.threads, args.request_mem_mb, args.gpus, args.request_runtime, os.environ),
        tracking=json.loads(os.environ[TRACKING_ENV]) if os.environ.get(TRACKING_ENV) else DEFAULT_TRACKING,
        code_dir=Path.cwd(),
        history_dir=args.history_dir,
        stop_after_epoch=args.until_epoch,
        rung_record=args.rung_record,
        budget_may_grow=args.budget_may_grow,
    )
    if launched_by_torchrun(os.environ):  # a worker: the process the scheduler started holds the run
        train_run(job)
        return
    # No other live process may train this run (a duplicate job after a Snakemake restart stops here);
    # held until this process ends, through the exec of torchrun.
    with holding_the_run(job):
        check_device(job)  # no GPU, or no kernel for it: stop before copying data or starting workers
        if os.environ.get(STAGE_ENV) == "1":
            job = replace(job, processed_dir=stage_processed(args.processed_dir, os.environ.get("TMPDIR")))
        if args.gpus > 1:
            argv = with_options(sys.argv[1:], processed_dir=str(job.processed_dir))
            relaunch_under_torchrun(__file__, argv, args.gpus, args.threads)
        train_run(job)


if __name__ == "__main__":
    run_main(main)
