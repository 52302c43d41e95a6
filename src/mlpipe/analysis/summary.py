"""The tables of a sweep: one row per run, one per configuration, resource use, and the best config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from mlpipe.analysis.collect import Run, load_runs
from mlpipe.analysis.gpu_use import with_gpu_use
from mlpipe.analysis.html import write_html_table
from mlpipe.analysis.stats import configuration_label, seed_statistics
from mlpipe.cluster.accounting import elapsed_seconds
from mlpipe.hparams import hparam
from mlpipe.io import atomic_path, write_text

log = logging.getLogger(__name__)

# A request counts as oversized when the run used less than this share of it.
OVERSIZED_BELOW = 0.25
COST_ROWS = ("first attempts", "retries", "all")


def run_table(runs: list[Run], swept: list[str]) -> pd.DataFrame:
    """One row per run: swept hyperparameters, seed, best val accuracy, test accuracy, time, throughput."""
    return pd.DataFrame(
        [
            {
                "run_id": run.run_id,
                **{key: hparam(run.hparams, key) for key in swept},
                "seed": run.hparams["seed"],
                "best_val_acc": run.run_config["best_val_acc"],
                "best_val_loss": run.run_config["best_val_loss"],
                "best_epoch": run.run_config["best_epoch"],
                "test_acc": run.evaluation["test_accuracy"],
                "train_seconds": run.run_config["train_seconds"],
                "images_per_second": float(run.metrics["images_per_second"].mean()),
            }
            for run in runs
        ]
    )


def resource_table(runs: list[Run]) -> pd.DataFrame:
    """What each run's job asked for against what it used; requests far above use are flagged; then its GPU use."""
    rows = []
    for run in runs:
        asked, used = run.info.get("requested", {}), run.info.get("usage", {})
        minutes, mem_mb, gpus = asked.get("runtime_minutes"), asked.get("mem_mb"), asked.get("gpus") or 0
        wall = used.get("wall_seconds", run.run_config["train_seconds"])
        peak_mb = used.get("peak_host_memory_mb")
        walltime_share = wall / 60 / minutes if minutes else None
        memory_share = peak_mb / mem_mb if mem_mb and peak_mb else None
        oversized = [
            name
            for name, share in (("walltime", walltime_share), ("memory", memory_share))
            if share is not None and share < OVERSIZED_BELOW
        ]
        rows.append(
            {
                "run_id": run.run_id,
                "status": run.info.get("status", "unknown"),
                "attempts": run.info.get("attempts"),
                "partition": run.info.get("provenance", {}).get("slurm_partition"),
                "cpus": asked.get("cpus"),
                "gpus": gpus,
                "runtime_asked_min": minutes,
                "wall_used_min": wall / 60,
                "walltime_used_share": walltime_share,
                "mem_asked_mb": mem_mb,
                "peak_host_memory_mb": peak_mb,
                "memory_used_share": memory_share,
                "peak_gpu_memory_mb": used.get("peak_gpu_memory_mb"),
                "gpu_hours_asked": gpus * minutes / 60 if minutes else None,
                "gpu_hours_used": gpus * wall / 3600,
                "images_per_second": used.get("images_per_second"),
                "oversized": ", ".join(oversized),
            }
        )
    return with_gpu_use(pd.DataFrame(rows), runs)


def cost_table(runs: list[Run], elapsed: Mapping[str, float]) -> pd.DataFrame:
    """GPU-hours the study's train jobs asked SLURM for and used (``elapsed``: SLURM's accounting of each job, else
    the trainer's clock): first attempts, retries, and all of them."""
    totals = {kind: {"jobs": 0, "gpu_hours_requested": 0.0, "gpu_hours_used": 0.0} for kind in COST_ROWS}
    for run in runs:
        for attempt in _attempts(run):
            seconds = elapsed.get(attempt.get("slurm_job_id") or "", attempt["wall_seconds"]) or 0
            gpus = attempt["requested"].get("gpus") or 0
            minutes = attempt["requested"].get("runtime_minutes") or 0
            for kind in ("first attempts" if attempt["attempt"] == 1 else "retries", "all"):
                totals[kind]["jobs"] += 1
                totals[kind]["gpu_hours_requested"] += gpus * minutes / 60
                totals[kind]["gpu_hours_used"] += gpus * seconds / 3600
    rows = [{"attempts": kind, **values} for kind, values in totals.items()]
    for row in rows:
        asked = row["gpu_hours_requested"]
        row["used_share"] = row["gpu_hours_used"] / asked if asked else None
    return pd.DataFrame(rows)


def _attempts(run: Run) -> list[dict]:
    """The run's attempts as its run_info.json logs them (a record from before the log: its one attempt)."""
    logged = run.info.get("attempt_log")
    if logged:
        return [attempt | {"requested": attempt.get("requested") or {}} for attempt in logged]
    usage = run.info.get("usage", {})
    return [{"attempt": 1, "requested": run.info.get("requested") or {}, "wall_seconds": usage.get("wall_seconds")}]


def best_config(runs: list[Run], comparison: pd.DataFrame, swept: list[str]) -> dict:
    """Config keys that turn the workflow config into the best configuration (for ``--configfile``).

    ``train`` holds all its hyperparameters; the grid keeps each swept key with its one best value
    (so the merged config sweeps nothing else) and the seeds it was trained with.
    """
    best = comparison.iloc[0]
    members = [
        run
        for run in runs
        if configuration_label({key: hparam(run.hparams, key) for key in swept}) == best["configuration"]
    ]
    train = {key: value for key, value in members[0].hparams.items() if key != "seed"}
    return {
        "train": train,
        "sweep": {
            "grid": {key: [hparam(train, key)] for key in swept},
            "seeds": sorted(run.hparams["seed"] for run in members),
        },
    }


def _tie_note(comparison: pd.DataFrame) -> str:
    tied = comparison[comparison["best_val_acc_mean"] == comparison.iloc[0]["best_val_acc_mean"]]
    if len(tied) < 2:
        return ""
    return (
        f"# {len(tied)} configurations tie on it ({tied.iloc[0]['best_val_acc_mean']:.4f}); the lowest mean\n"
        "# validation loss at the best epoch broke the tie.\n"
    )


def write_table(table: pd.DataFrame, path: Path, title: str, empty_note: str = "No rows.") -> None:
    """The table as CSV at ``path`` and, for the report, as HTML beside it (same name, .html)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    write_html_table(table, path.with_suffix(".html"), title, empty_note)


def summarize_sweep(
    runs_dir: Path,
    run_ids: list[str],
    swept: list[str],
    out: dict[str, Path],
    study: Mapping | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Write summary, comparison, resources, excluded-runs tables and best_config.yaml to ``out``.

    ``study``: the config keys that say where the study lives and what it trains on (``mlpipe.config.study_settings``),
    copied into best_config.yaml so that it reproduces this study on top of any config/config.yaml. ``environ``: to
    ask SLURM's accounting what the study's jobs used (cost.csv)."""
    runs, excluded = load_runs(runs_dir, run_ids)
    for bad in excluded:
        log.warning("excluded %s: %s", bad["run_id"], bad["reason"])
    if not runs:
        raise ValueError(f"no usable run among {len(run_ids)} in {runs_dir}; see the reasons above")
    summary = run_table(runs, swept)
    comparison = seed_statistics(summary, swept)
    write_table(summary, out["summary"], "Every run")
    write_table(comparison, out["comparison"], "Configurations over seeds, best first")
    write_table(resource_table(runs), out["resources"], "Asked for and used, per run")
    job_ids = [attempt.get("slurm_job_id") for run in runs for attempt in _attempts(run)]
    elapsed = elapsed_seconds(job_ids, environ) if environ is not None else {}
    write_table(cost_table(runs, elapsed), out["cost"], "GPU-hours of the study: asked for and used")
    write_table(
        pd.DataFrame(excluded, columns=["run_id", "reason"]),
        out["excluded"],
        "Runs left out",
        empty_note="None: every run's files were complete and readable.",
    )
    header = (
        f"# Best configuration by mean validation accuracy over seeds: {comparison.iloc[0]['configuration']}\n"
        f"{_tie_note(comparison)}"
        "# (test accuracy never chose it). With this study's data and folders, on top of config/config.yaml it\n"
        "# trains just this configuration (its runs are reused):\n"
        f"#     snakemake --cores 2 --configfile {out['best_config']}\n"
        "# (then change its seeds or epochs to study it further).\n"
    )
    config = {**(study or {}), **best_config(runs, comparison, swept)}
    write_text(out["best_config"], header + yaml.safe_dump(config, sort_keys=False))
