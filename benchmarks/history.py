"""The registry and comparison jobs of a study with a long history: 1,000 runs x 10 passes (10,000 versions).

Writes a synthetic study as the jobs leave one (each run's current folder, and in results/history every version
with its record, 12 epochs of metrics and its evaluation; a 10 x 10 grid x 10 seeds), then runs the registry job
(every version merged into registry.sqlite, the pass recorded) and the comparison job (the current pass against
the previous version of each run, table and plot) as the rules run them: each a fresh `python scripts/...`
process, start-up and imports included. Target (issue 21): each under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workflow_copy import measured_on

REPO = Path(__file__).resolve().parents[1]
METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"]
CODE = {f"src/mlpipe/training/module_{index}.py": f"{index:012x}" for index in range(23)}


def hparams(lr: float, weight_decay: float, seed: int, edit: int) -> dict:
    return {
        "model": "small_cnn",
        "model_args": {},
        "epochs": 12,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": lr,
        "momentum": 0.9,
        "weight_decay": weight_decay,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.0,
        "ema_decay": None,
        "crop_padding": 0,
        "flip": False,
        "precision": "auto",
        "compile": False,
        "checkpoint_every": 1,
        "eval_batch_size": 1024,
        "gpu_memory_headroom": 0.2 + edit / 1000,  # each pass an edit
        "seed": seed,
    }


def write_study(root: Path, runs: int, passes: int) -> list[str]:
    """Current run folders and the history of every pass; returns the run ids."""
    rng = random.Random(0)
    learning_rates, decays = [0.01 * (index + 1) for index in range(10)], [0.0001 * (index + 1) for index in range(10)]
    seeds = max(1, runs // 100)
    grid = [(lr, decay, seed) for lr in learning_rates for decay in decays for seed in range(seeds)][:runs]
    run_ids = [f"lr-{lr:g}_weight_decay-{decay:g}_seed-{seed}" for lr, decay, seed in grid]
    history = root / "results" / "history" / "runs"
    for run_id, (lr, decay, seed) in zip(run_ids, grid):
        for edit in range(passes):
            version = f"2026120{edit}T000000Z-{rng.randrange(16**6):06x}"
            params = hparams(lr, decay, seed, edit)
            rows = [{"epoch": epoch, **{metric: rng.random() for metric in METRICS}} for epoch in range(1, 13)]
            accuracy = 0.9 + 0.05 * rng.random()
            record = {
                "run_id": run_id,
                "version": version,
                "hparams": params,
                "best_epoch": 12,
                "best_val_acc": accuracy,
                "best_val_loss": 1 - accuracy,
                "train_seconds": 100.0,
                "device": "cpu",
                "precision": "fp32",
                "finished": "2026-12-04T00:00:00+00:00",
                "provenance": {"git_commit": f"{edit:040x}", "git_dirty": False, "lock_sha256": "0" * 64},
                "code": CODE,
                "data": {"dataset": "digits", "checksum": "0" * 16},
                "metrics": rows,
            }
            evaluation = {"test_accuracy": accuracy - 0.01, "test_loss": 0.2, "test_count": 1000}
            folder = history / run_id / version
            folder.mkdir(parents=True)
            (folder / "record.json").write_text(json.dumps(record))
            (folder / "evaluation.json").write_text(json.dumps(evaluation))
            (folder / "best.pt").write_bytes(b"weights")
        run_dir = root / "results" / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "run_config.json").write_text(json.dumps(record | {"metrics": None}))
        (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
        header = ",".join(["epoch", *METRICS])
        lines = [",".join(str(row[key]) for key in ["epoch", *METRICS]) for row in rows]
        (run_dir / "metrics.csv").write_text("\n".join([header, *lines]) + "\n")
        (run_dir / "confusion.csv").write_text("true_class,a,b\na,1,0\nb,0,1\n")
        (run_dir / "run_info.json").write_text(json.dumps({"status": "finished", "provenance": record["provenance"]}))
    return run_ids


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(measured_on())
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        run_ids = write_study(root, args.runs, args.passes)
        common = ["--runs-dir", "results/runs", "--run-ids", json.dumps(run_ids), "--history-dir", "results/history"]
        registry = [
            sys.executable,
            str(REPO / "scripts" / "registry.py"),
            *common,
            *("--database", "results/registry.sqlite", "--provenance", "results/provenance.csv"),
        ]
        compare = [
            sys.executable,
            str(REPO / "scripts" / "compare.py"),
            *common,
            *("--swept", json.dumps(["lr", "weight_decay"]), "--table", "results/comparison_baseline.csv"),
            *("--plot", "results/plots/before_after.png"),
        ]
        for name, command in (("registry", registry), ("comparison", compare)):
            seconds = sorted(timed(command, root) for _ in range(args.repeats))
            print(
                f"{name} job, {len(run_ids)} runs x {args.passes} passes ({len(run_ids) * args.passes} versions): "
                f"fastest {seconds[0]:.2f} s, median {seconds[len(seconds) // 2]:.2f} s over {args.repeats} "
                "(target: under 10 s)"
            )


if __name__ == "__main__":
    main()
