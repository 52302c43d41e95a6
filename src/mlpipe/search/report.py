"""What a successive-halving search did: each rung's ranking (the promote checkpoint's file), the ladder plot
(validation accuracy of every configuration at every rung it reached, promoted ones marked) and the budget it used
against the full grid's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from mlpipe.analysis.plots import save_figure
from mlpipe.analysis.summary import write_table
from mlpipe.io import read_json, write_json
from mlpipe.layout import RunFiles
from mlpipe.search.halving import rank

LADDER_COLUMNS = ["epochs", "configuration", "seeds", "val_acc", "val_loss", "promoted"]


def write_promotion(records: Iterable[Mapping], epochs: int, keep: int, path: Path) -> dict:
    """The promote checkpoint's file: the rung's ranking and the configurations that go on, best first."""
    ranking = rank(records, keep)
    promotion = {
        "epochs": epochs,
        "keep": keep,
        "promoted": [row["configuration"] for row in ranking if row["promoted"]],
        "ranking": ranking,
    }
    write_json(path, promotion)
    return promotion


def final_rung_records(runs_dir: Path, run_ids: Iterable[str]) -> list[dict]:
    """The finalists' records at the full budget, as a rung's records are: the best epoch their run_config.json
    names."""
    records = []
    for run_id in run_ids:
        run_config = read_json(RunFiles.of(runs_dir / run_id).run_config)
        records.append(
            {"run_id": run_id, "best_val_acc": run_config["best_val_acc"], "best_val_loss": run_config["best_val_loss"]}
        )
    return records


def ladder_table(promotions: Iterable[Mapping], final: Iterable[Mapping], epochs: int) -> pd.DataFrame:
    """One row per configuration per rung it reached; the last rung's are the finalists (promoted: none)."""
    rows = [{"epochs": promotion["epochs"], **row} for promotion in promotions for row in promotion["ranking"]]
    rows += [{"epochs": epochs, **row} for row in rank(final, keep=0)]
    return pd.DataFrame(rows, columns=LADDER_COLUMNS)


def budget_table(ladder: pd.DataFrame) -> pd.DataFrame:
    """Per rung: configurations, runs and the epochs they trained in it (each continues from the rung before), then
    the search's total against the full grid's (every run of the first rung trained to the last rung's epochs)."""
    rows, start = [], 0
    for epochs, rung in ladder.groupby("epochs", sort=True):
        runs = int(rung["seeds"].sum())
        rows.append(
            {
                "rung": f"{start + 1}-{epochs}" if epochs > start + 1 else str(epochs),
                "epochs": int(epochs),
                "configurations": len(rung),
                "runs": runs,
                "epochs_trained": runs * (int(epochs) - start),
            }
        )
        start = int(epochs)
    total = sum(row["epochs_trained"] for row in rows)
    full = rows[0]["runs"] * start
    first = rows[0]
    for name, trained in (("all rungs", total), ("full grid", full)):
        rows.append({**first, "rung": name, "epochs": start, "epochs_trained": trained})
    table = pd.DataFrame(rows)
    table["share_of_full_grid"] = (table["epochs_trained"] / full).round(3)
    return table


def plot_ladder(ladder: pd.DataFrame, path: Path) -> None:
    """Validation accuracy (mean over seeds) of each configuration at each rung it reached; a filled marker went on
    to the next rung, a cross stopped there, a star is a finalist (the best one labelled)."""
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    last = ladder["epochs"].max()
    for _, path_of in ladder.sort_values("epochs").groupby("configuration"):
        axis.plot(path_of["epochs"], path_of["val_acc"], color="tab:gray", alpha=0.35, linewidth=1)
    stopped = ladder[(ladder["epochs"] < last) & ~ladder["promoted"].astype(bool)]
    went_on = ladder[(ladder["epochs"] < last) & ladder["promoted"].astype(bool)]
    finalists = ladder[ladder["epochs"] == last]
    axis.scatter(stopped["epochs"], stopped["val_acc"], marker="x", color="tab:red", label="stopped here")
    axis.scatter(went_on["epochs"], went_on["val_acc"], marker="o", color="tab:blue", label="promoted")
    axis.scatter(finalists["epochs"], finalists["val_acc"], marker="*", s=120, color="tab:green", label="finalist")
    if len(finalists):
        best = finalists.sort_values(["val_acc", "val_loss"], ascending=[False, True]).iloc[0]
        axis.annotate(
            best["configuration"],
            (best["epochs"], best["val_acc"]),
            textcoords="offset points",
            xytext=(-8, 8),
            ha="right",
            fontsize="small",
        )
    rungs = sorted(ladder["epochs"].unique())
    axis.set_xscale("log")
    axis.set_xticks(rungs, [str(epochs) for epochs in rungs])
    axis.minorticks_off()
    axis.set(
        xlabel="epochs trained (rung)",
        ylabel="best validation accuracy (mean over seeds)",
        title="Successive halving: each configuration per rung",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    save_figure(figure, path)


def write_ladder(
    promotion_files: Iterable[Path], runs_dir: Path, run_ids: list[str], epochs: int, budget: Path, plot: Path
) -> pd.DataFrame:
    """The budget table (CSV and HTML) and the ladder plot of a finished search."""
    promotions = sorted((read_json(path) for path in promotion_files), key=lambda promotion: promotion["epochs"])
    ladder = ladder_table(promotions, final_rung_records(runs_dir, run_ids), epochs)
    table = budget_table(ladder)
    write_table(table, budget, "Successive halving: epochs trained per rung against the full grid")
    plot_ladder(ladder, plot)
    return table
