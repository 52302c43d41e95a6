"""``make history``: the study's passes and tags, and the comparison of the current pass with its baseline,
printed for a terminal (a login node has no browser at hand)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mlpipe.config import SCHEMA, check_config, load_schema, load_workflow_config
from mlpipe.history.compare import by_configuration
from mlpipe.history.passes import load_passes, load_tags
from mlpipe.history.report import comparison_table
from mlpipe.history.store import Version, load_versions
from mlpipe.layout import HISTORY_DIR_NAME


def study_history(workflow_dir: Path, configfiles: list[Path], baseline: str | None = None) -> str:
    """Everything ``make history`` prints, for the study that ``snakemake`` with these config files runs."""
    config = load_workflow_config(workflow_dir, configfiles)
    runs = check_config(config, load_schema(workflow_dir / SCHEMA))
    results = workflow_dir / config["results_dir"]
    history_dir = results / HISTORY_DIR_NAME
    swept = list(config["sweep"]["grid"])
    history = load_versions(history_dir)
    baseline = baseline or config["compare"]["baseline"]
    sections = [
        _sets(
            "Passes (each a set of run versions, recorded when they change)",
            load_passes(history_dir),
            history,
            swept,
            "number",
        ),
        _sets("Tags", list(load_tags(history_dir).values()), history, swept, "name"),
        f"Current pass against {f'tag {baseline!r}' if baseline else 'the previous version of each run'}:",
        format_comparison(comparison_table(results / "runs", list(runs), history_dir, baseline, swept)),
    ]
    return "\n\n".join(sections)


def best_configuration(versions: list[Version], swept: list[str]) -> tuple[str, float]:
    """The configuration with the best mean validation accuracy (ties: lower mean validation loss), and that mean."""
    scored = []
    for label, group in by_configuration({str(index): found for index, found in enumerate(versions)}, swept).items():
        accuracy = sum(found.record["best_val_acc"] for found in group) / len(group)
        loss = sum(found.record["best_val_loss"] for found in group) / len(group)
        scored.append((accuracy, -loss, label))
    if not scored:
        return "-", math.nan
    accuracy, _, label = max(scored)
    return label, accuracy


def _sets(
    title: str, sets: list[dict], history: Mapping[str, Mapping[str, Version]], swept: list[str], key: str
) -> str:
    rows = []
    for found in sets:
        versions = [
            history[run_id][version] for run_id, version in found["runs"].items() if version in history.get(run_id, {})
        ]
        commits = sorted(
            {(found_version.record.get("provenance", {}).get("git_commit") or "none")[:7] for found_version in versions}
        )
        label, accuracy = best_configuration(versions, swept)
        rows.append(
            {
                key: found[key],
                "created": found["created"],
                "runs": len(found["runs"]),
                "commits": " ".join(commits) or "-",
                "best configuration": label,
                "mean val acc": f"{accuracy:.4f}",
            }
        )
    if not rows:
        return f"{title}: none yet"
    return f"{title}:\n{pd.DataFrame(rows).to_string(index=False)}"


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison, one line per configuration: means with intervals, the difference and its p-value."""
    if table.empty:
        return "no configuration yet"

    def interval(row, metric, side):
        mean = row[f"{metric}_{side}_mean"]
        if math.isnan(mean):
            return "-"
        return f"{mean:.4f} [{row[f'{metric}_{side}_ci95_low']:.4f}, {row[f'{metric}_{side}_ci95_high']:.4f}]"

    def difference(row, metric):
        diff = row.get(f"{metric}_diff", math.nan)
        if diff is None or math.isnan(diff):
            return "-"
        low, high, p_value = (row[f"{metric}_{name}"] for name in ("diff_ci95_low", "diff_ci95_high", "p_value"))
        return f"{diff:+.4f} [{low:+.4f}, {high:+.4f}] p={p_value:.3g}"

    rows = [
        {
            "configuration": row["configuration"],
            "status": row["status"],
            "seeds": f"{row['n_baseline']}->{row['n_current']}",
            "val acc before": interval(row, "val_acc", "baseline"),
            "val acc now": interval(row, "val_acc", "current"),
            "val acc change": difference(row, "val_acc"),
            "test acc change": difference(row, "test_acc"),
            "changed": row["changed"],
        }
        for _, row in table.iterrows()
    ]
    return pd.DataFrame(rows).to_string(index=False)
