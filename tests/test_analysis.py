"""The analysis of a sweep: the run registry, seed statistics, the best configuration, excluded runs."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import STUDY_RUN_IDS as RUN_IDS
from conftest import planned_jobs, snakemake
from mlpipe.analysis import plots
from mlpipe.analysis.collect import load_run, load_runs
from mlpipe.analysis.gpu_use import GPU_USE_COLUMNS
from mlpipe.analysis.registry import build_registry
from mlpipe.analysis.stats import seed_statistics
from mlpipe.analysis.summary import summarize_sweep
from mlpipe.io import write_csv, write_json
from mlpipe.layout import OPTIONAL_METRIC_COLUMNS, RunFiles
from mlpipe.tracking.run_record import RunRecord


def test_registry_holds_every_run_and_every_epoch_metric(finished_workflow):
    connection = sqlite3.connect(finished_workflow / "results" / "registry.sqlite")
    rows = connection.execute("SELECT run_id, status, hparams, device, torch FROM runs ORDER BY run_id").fetchall()
    assert [row[0] for row in rows] == RUN_IDS
    assert all(row[1] == "finished" and row[3] == "cpu" and row[4] for row in rows)
    assert json.loads(rows[2][2])["lr"] == 0.1
    (count,) = connection.execute("SELECT COUNT(*) FROM epochs").fetchone()
    assert count == 4 * 3 * 8  # runs x epochs x metrics: the 7 of every run and the data wait (no GPU measured)
    metrics = pd.read_csv(finished_workflow / "results" / "runs" / RUN_IDS[1] / "metrics.csv")
    for metric in ("val_acc", "data_wait_share"):
        (value,) = connection.execute(
            "SELECT value FROM epochs WHERE run_id = ? AND epoch = 2 AND metric = ?", (RUN_IDS[1], metric)
        ).fetchone()
        assert value == metrics.loc[metrics["epoch"] == 2, metric].item()


def write_fake_run(runs_dir: Path, index: int, lr: float = 0.1, best_val_loss: float = 1.0) -> None:
    """A run folder as a training job leaves it, written through the same writers, many times over."""
    run_id = f"run-{index}"
    run_dir = runs_dir / run_id
    record = RunRecord(
        RunFiles.of(run_dir).run_info, run_id, {"lr": lr, "seed": index}, {"host": f"node{index}"}, {"gpus": 1}
    )
    rows = []
    for epoch in range(1, 21):
        rows.append(
            {
                "epoch": epoch,
                "train_loss": 1 / epoch,
                "train_acc": 0.5,
                "val_loss": 1.0,
                "val_acc": epoch / 20,
                "lr": 0.1,
                "epoch_seconds": 1.0,
                "images_per_second": 100.0,
            }
        )
        record.update(usage={"epochs_done": epoch})
        write_csv(run_dir / "metrics.csv", rows, list(rows[0]))
    write_json(
        run_dir / "run_config.json",
        {
            "hparams": {"lr": lr, "seed": index},
            "best_val_acc": 1.0,
            "best_val_loss": best_val_loss,
            "best_epoch": 20,
            "train_seconds": 20.0,
        },
    )
    write_json(run_dir / "evaluation.json", {"test_accuracy": 0.9})
    (run_dir / "confusion.csv").write_text("true_class,a,b\na,1,0\nb,0,1\n")
    record.end("finished", usage={"wall_seconds": 21.0})


def write_fake_run_together(barrier, runs_dir: Path, index: int) -> None:
    """One training job's writes, started at the same moment as the others'."""
    barrier.wait()
    write_fake_run(runs_dir, index)


def test_twelve_jobs_writing_at_once_lose_no_row(tmp_path):
    # Twelve processes (each a training job) start together and write their run files, twenty times over, into
    # one runs folder; the registry then holds every run and every (run, epoch, metric).
    runs_dir = tmp_path / "runs"
    context, count = multiprocessing.get_context("fork"), 12
    barrier = context.Barrier(count)
    jobs = [context.Process(target=write_fake_run_together, args=(barrier, runs_dir, index)) for index in range(count)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(300)
    assert [job.exitcode for job in jobs] == [0] * count
    run_ids = [f"run-{index}" for index in range(count)]
    assert build_registry(runs_dir, run_ids, tmp_path / "registry.sqlite", tmp_path / "provenance.csv") == count
    connection = sqlite3.connect(tmp_path / "registry.sqlite")
    assert connection.execute("SELECT COUNT(*) FROM runs WHERE status = 'finished'").fetchone() == (count,)
    assert connection.execute("SELECT COUNT(*) FROM epochs").fetchone() == (count * 20 * 7,)
    assert sorted(pd.read_csv(tmp_path / "provenance.csv")["host"]) == sorted(f"node{index}" for index in range(count))


def test_seed_statistics_mean_std_interval_and_rank_by_validation_only():
    summary = pd.DataFrame(
        {
            "run_id": list("abcde"),
            "lr": [0.1, 0.1, 0.1, 0.2, 0.2],
            "seed": [0, 1, 2, 0, 1],
            "best_val_acc": [0.90, 0.92, 0.94, 0.80, 0.82],
            "best_val_loss": [0.3, 0.2, 0.1, 0.5, 0.4],
            "test_acc": [0.70, 0.72, 0.74, 0.99, 0.99],  # lr 0.2 tests better but validates worse: it must not win
            "train_seconds": [10.0, 11.0, 12.0, 5.0, 5.0],
        }
    )
    table = seed_statistics(summary, ["lr"]).set_index("configuration")
    assert list(table.index) == ["lr=0.1", "lr=0.2"] and table.loc["lr=0.1", "rank"] == 1
    row = table.loc["lr=0.1"]
    assert row["best_val_acc_mean"] == pytest.approx(0.92) and row["best_val_acc_std"] == pytest.approx(0.02)
    half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert row["best_val_acc_ci95_low"] == pytest.approx(0.92 - half)
    assert row["best_val_acc_ci95_high"] == pytest.approx(0.92 + half)
    assert row["best_val_acc_n"] == 3 and row["seeds"] == "0 1 2"


def test_a_tie_on_validation_accuracy_goes_to_the_lower_validation_loss():
    summary = pd.DataFrame(
        {
            "run_id": list("abcd"),
            "lr": [0.1, 0.1, 0.2, 0.2],
            "seed": [0, 1, 0, 1],
            "best_val_acc": [1.0, 1.0, 1.0, 1.0],  # a small validation set: every configuration gets 100 %
            "best_val_loss": [0.05, 0.07, 0.02, 0.03],
            "test_acc": [0.99, 0.99, 0.97, 0.97],
            "train_seconds": [1.0] * 4,
        }
    )
    assert seed_statistics(summary, ["lr"])["configuration"].tolist() == ["lr=0.2", "lr=0.1"]


def test_intervals_stay_within_each_metrics_range():
    summary = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "lr": [0.1, 0.1],
            "seed": [0, 1],
            "best_val_acc": [1.0, 0.98],
            "best_val_loss": [0.01, 0.2],
            "test_acc": [0.99, 0.97],
            "train_seconds": [1.0, 3.0],
        }
    )
    row = seed_statistics(summary, ["lr"]).iloc[0]
    # With two seeds the t-interval is wide: it passes 1 for accuracies and falls below 0 for the loss and time.
    assert row["best_val_acc_ci95_high"] == 1.0 and row["test_acc_ci95_high"] == 1.0
    assert row["best_val_loss_ci95_low"] == 0.0 and row["train_seconds_ci95_low"] == 0.0
    half = stats.t.ppf(0.975, 1) * summary["best_val_loss"].std() / math.sqrt(2)
    assert row["best_val_loss_ci95_high"] == pytest.approx(summary["best_val_loss"].mean() + half)


def test_best_config_says_when_validation_loss_broke_a_tie(tmp_path):
    runs_dir = tmp_path / "runs"
    for index, (lr, loss) in enumerate([(0.1, 0.5), (0.1, 0.5), (0.2, 0.1), (0.2, 0.2)]):
        write_fake_run(runs_dir, index, lr=lr, best_val_loss=loss)
    out = {name: tmp_path / f"{name}.csv" for name in ("summary", "comparison", "resources", "cost", "excluded")}
    out["best_config"] = tmp_path / "best_config.yaml"
    summarize_sweep(runs_dir, [f"run-{index}" for index in range(4)], ["lr"], out)
    text = out["best_config"].read_text()
    assert text.splitlines()[0].endswith("lr=0.2") and "2 configurations tie on it (1.0000)" in text
    assert yaml.safe_load(text)["train"] == {"lr": 0.2}


def test_a_single_seed_has_no_interval():
    summary = pd.DataFrame(
        {
            "run_id": ["a"],
            "lr": [0.1],
            "seed": [0],
            "best_val_acc": [0.9],
            "best_val_loss": [0.3],
            "test_acc": [0.8],
            "train_seconds": [1.0],
        }
    )
    row = seed_statistics(summary, ["lr"]).iloc[0]
    assert row["test_acc_n"] == 1 and math.isnan(row["test_acc_std"]) and math.isnan(row["test_acc_ci95_low"])


def test_comparison_table_and_best_config_of_the_study(finished_workflow):
    results = finished_workflow / "results"
    comparison = pd.read_csv(results / "comparison.csv")
    summary = pd.read_csv(results / "summary.csv")
    assert list(comparison["configuration"]) in (["lr=0.05", "lr=0.1"], ["lr=0.1", "lr=0.05"])
    assert (comparison["test_acc_n"] == 2).all()
    means = summary.groupby("lr")["best_val_acc"].mean()
    assert comparison.iloc[0]["best_val_acc_mean"] == pytest.approx(means.max())
    best = yaml.safe_load((results / "best_config.yaml").read_text())
    assert best["train"]["lr"] == comparison.iloc[0]["lr"] and best["sweep"] == {
        "grid": {"lr": [best["train"]["lr"]]},
        "seeds": [0, 1],
    }


def test_best_config_fed_back_trains_only_that_configuration(finished_copy):
    best_config = finished_copy / "results" / "best_config.yaml"
    # Its runs exist already: no training, only the tables of the (now smaller) study are redone.
    assert planned_jobs(finished_copy, "--configfile", str(best_config)) == {
        "summarize": 1,
        "registry": 1,
        "plot": 1,
        "compare": 1,
        "all": 1,
    }
    # With one more seed, only that configuration trains again.
    config = yaml.safe_load(best_config.read_text())
    config["sweep"]["seeds"] = [0, 1, 7]
    best_config.write_text(yaml.safe_dump(config))
    planned = planned_jobs(finished_copy, "--configfile", str(best_config))
    assert planned["train"] == 1 and planned["evaluate"] == 1


def test_a_corrupt_run_folder_is_excluded_by_name_not_a_crash(finished_copy):
    broken = finished_copy / "results" / "runs" / RUN_IDS[1] / "evaluation.json"
    broken.write_text('{"test_accuracy": ')
    snakemake(finished_copy, "--cores", "1")
    excluded = pd.read_csv(finished_copy / "results" / "excluded_runs.csv")
    assert excluded["run_id"].tolist() == [RUN_IDS[1]]
    assert excluded["reason"].item().startswith(f"results/runs/{RUN_IDS[1]}/evaluation.json: not valid JSON")
    summary = pd.read_csv(finished_copy / "results" / "summary.csv")
    assert RUN_IDS[1] not in set(summary["run_id"]) and len(summary) == 3


def test_local_runs_have_no_scheduler_request_to_flag(finished_workflow):
    resources = pd.read_csv(finished_workflow / "results" / "resources.csv")
    assert list(resources["run_id"]) == RUN_IDS
    assert resources["status"].eq("finished").all() and resources["runtime_asked_min"].isna().all()
    assert resources["oversized"].isna().all() and (resources["wall_used_min"] > 0).all()


def summary_outputs(folder: Path) -> dict[str, Path]:
    out = {name: folder / f"{name}.csv" for name in ("summary", "comparison", "resources", "cost", "excluded")}
    return out | {"best_config": folder / "best_config.yaml"}


def test_run_folders_from_before_the_gpu_columns_load_with_them_empty(tmp_path):
    write_fake_run(tmp_path / "runs", 0)  # metrics.csv without data_wait_share and the gpu columns
    run = load_run(tmp_path / "runs" / "run-0")
    assert run.metrics[OPTIONAL_METRIC_COLUMNS].isna().all().all() and len(run.metrics) == 20
    summarize_sweep(tmp_path / "runs", ["run-0"], [], summary_outputs(tmp_path))
    resources = pd.read_csv(tmp_path / "resources.csv")
    assert resources[GPU_USE_COLUMNS].isna().all().all() and resources["run_id"].tolist() == ["run-0"]


def test_a_gpu_column_that_is_not_a_number_excludes_the_run_by_name(tmp_path):
    for index in range(2):
        write_fake_run(tmp_path / "runs", index)
    metrics = tmp_path / "runs" / "run-1" / "metrics.csv"
    table = pd.read_csv(metrics).assign(gpu_util="busy")
    table.to_csv(metrics, index=False)
    runs, excluded = load_runs(tmp_path / "runs", ["run-0", "run-1"])
    assert [run.run_id for run in runs] == ["run-0"]
    assert excluded == [{"run_id": "run-1", "reason": f"{metrics}: non-numeric values in gpu_util"}]


def test_resources_show_each_runs_gpu_use_and_flag(tmp_path):
    flag = "gpu idle: mean utilisation 23% — data wait 61% of step time: the data path starves the GPU"
    used = {"gpu_util": 23.0, "gpu_memory_mb": 5120.0, "gpu_power_w": 151.5, "data_wait_share": 0.61}
    for index in range(2):
        write_fake_run(tmp_path / "runs", index)
    info = RunFiles.of(tmp_path / "runs" / "run-1").run_info
    record = json.loads(info.read_text())
    record["usage"] |= used | {"gpu_flag": flag}
    write_json(info, record)
    summarize_sweep(tmp_path / "runs", ["run-0", "run-1"], [], summary_outputs(tmp_path))
    resources = pd.read_csv(tmp_path / "resources.csv").set_index("run_id")
    assert resources.loc["run-1", list(used)].to_dict() == used and resources.loc["run-1", "gpu_flag"] == flag
    assert resources.loc["run-0", GPU_USE_COLUMNS].isna().all()
    page = (tmp_path / "resources.html").read_text()
    assert "gpu_util" in page and "the data path starves the GPU" in page  # the report's page of the table


def test_a_studys_runs_record_their_data_wait_and_leave_the_gpu_columns_empty_on_the_cpu(finished_workflow):
    resources = pd.read_csv(finished_workflow / "results" / "resources.csv")
    assert resources["data_wait_share"].between(0, 1).all() and resources["data_wait_share"].gt(0).all()
    assert resources[["gpu_util", "gpu_memory_mb", "gpu_power_w", "gpu_flag"]].isna().all().all()
    for run_id in RUN_IDS:
        metrics = pd.read_csv(finished_workflow / "results" / "runs" / run_id / "metrics.csv")
        assert list(metrics.columns[-4:]) == OPTIONAL_METRIC_COLUMNS and metrics["gpu_util"].isna().all()


def test_learning_curves_mark_whole_epochs_only(monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    metrics = {
        run_id: pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.2], "val_acc": [0.5, 0.7, 0.8]})
        for run_id in ("a", "b")
    }
    plots.plot_learning_curves(metrics, {"lr=0.1": ["a", "b"]}, tmp_path / "curves.png")
    for axis in figures[0].axes:
        figures[0].canvas.draw()
        ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick <= axis.get_xlim()[1]]
        assert ticks and all(float(tick).is_integer() for tick in ticks)


def test_the_studys_gpu_hours_count_first_attempts_and_retries_as_slurm_accounted_them():
    from mlpipe.analysis.collect import Run
    from mlpipe.analysis.summary import cost_table
    from mlpipe.cluster.accounting import parse_sacct

    def attempt(number, job, minutes, wall):
        asked = {"gpus": 2, "runtime_minutes": minutes}
        return {"attempt": number, "slurm_job_id": job, "requested": asked, "wall_seconds": wall, "status": "x"}

    log = [attempt(1, "7_1", 60, 3500.0), attempt(2, "9", 120, 1700.0)]
    runs = [Run("a", {}, {}, {}, pd.DataFrame(), pd.DataFrame(), {"attempt_log": log})]
    elapsed = parse_sacct("7_1|3600\n7_1.batch|3590\n9|1800\n11|5\n", {"7_1", "9"})
    assert elapsed == {"7_1": 3600.0, "9": 1800.0}  # the job's own line, not its steps'; only the jobs asked for
    table = cost_table(runs, elapsed).set_index("attempts")
    assert table.loc["first attempts", ["jobs", "gpu_hours_requested", "gpu_hours_used"]].tolist() == [1, 2.0, 2.0]
    assert table.loc["retries", ["jobs", "gpu_hours_requested", "gpu_hours_used"]].tolist() == [1, 4.0, 1.0]
    assert table.loc["all", "used_share"] == pytest.approx(3.0 / 6.0)
    without_accounting = cost_table(runs, {}).set_index("attempts")  # a study outside SLURM: the trainers' clocks
    assert without_accounting.loc["all", "gpu_hours_used"] == pytest.approx(2 * (3500 + 1700) / 3600)
