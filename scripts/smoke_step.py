"""Smoke test: time one training step of a model at the study's largest batch size, with its peak GPU memory."""

import argparse
import json
import logging
import os
from pathlib import Path

from mlpipe.cli import run_main
from mlpipe.device import allow_cpu_from_env
from mlpipe.io import write_json
from mlpipe.smoke.step import measure_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hparams", type=json.loads, required=True, help="the run's hyperparameters, as JSON")
    parser.add_argument("--processed-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output: the step's figures (JSON)")
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    step = measure_step(args.hparams, args.processed_dir, args.gpus, allow_cpu_from_env(os.environ), args.threads)
    logging.getLogger("mlpipe").info(
        "one step of %s at batch %d: %.3f s", step["model"], step["batch_size"], step["seconds_per_step"]
    )
    write_json(args.out, step)


if __name__ == "__main__":
    run_main(main)
