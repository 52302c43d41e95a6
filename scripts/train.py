"""Train stage: train one run; with --gpus N > 1, relaunch itself under torchrun (one process per GPU)."""

import argparse
import json
import os
import sys
from pathlib import Path

from mlpipe.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--hparams", type=json.loads, required=True, help="the run's hyperparameters, as JSON")
    parser.add_argument("--processed-dir", type=Path, required=True)
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="declared outputs: metrics, best/last weights, run config"
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="resumable state; kept when the job fails")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs the job asked for (0: use one if present)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--request-mem-mb", type=int, default=None, help="memory the job asked for (recorded)")
    parser.add_argument(
        "--request-runtime", type=int, default=None, help="walltime in minutes the job asked for (recorded)"
    )
    args = parser.parse_args()

    from mlpipe.training.distributed import launched_by_torchrun
    from mlpipe.training.launch import relaunch_under_torchrun, with_options
    from mlpipe.training.staging import stage_processed

    processed_dir = args.processed_dir
    # MLPIPE_STAGE_TO_TMPDIR=1 (set by the workflow): read the data from a copy in the job's $TMPDIR.
    if os.environ.get("MLPIPE_STAGE_TO_TMPDIR") == "1" and not launched_by_torchrun():  # once, before any worker
        processed_dir = stage_processed(args.processed_dir)

    if args.gpus > 1 and not launched_by_torchrun():
        relaunch_under_torchrun(
            __file__, with_options(sys.argv[1:], processed_dir=str(processed_dir)), args.gpus, args.threads
        )

    from mlpipe.tracking.provenance import scheduler_request
    from mlpipe.training.device import allow_cpu_from_env
    from mlpipe.training.loop import RunPaths, train_run

    paths = RunPaths(processed_dir, args.out_dir, args.state_dir)
    requested = scheduler_request(args.threads, args.request_mem_mb, args.gpus, args.request_runtime)
    train_run(
        args.run_id,
        args.hparams,
        paths,
        gpus=args.gpus,
        threads=args.threads,
        allow_cpu=allow_cpu_from_env(),
        requested=requested,
    )


if __name__ == "__main__":
    run_main(main)
