"""The comparison job: the current pass of the study against its baseline, as a table and a plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlpipe.analysis.summary import write_table
from mlpipe.history.compare import PREVIOUS, baseline_versions, compare_passes, evaluated
from mlpipe.history.passes import load_tags
from mlpipe.history.plot import plot_before_after
from mlpipe.history.store import current_version, load_versions


def current_pass(runs_dir: Path, run_ids: list[str]) -> dict[str, str]:
    """``{run id: version}`` of the study's runs that have one now."""
    versions = {run_id: current_version(runs_dir / run_id) for run_id in run_ids}
    return {run_id: version for run_id, version in versions.items() if version}


def comparison_table(
    runs_dir: Path, run_ids: list[str], history_dir: Path, baseline: str | None, swept: list[str]
) -> pd.DataFrame:
    history = load_versions(history_dir)
    current = current_pass(runs_dir, run_ids)
    now = evaluated(
        {run_id: history[run_id][version] for run_id, version in current.items() if version in history.get(run_id, {})}
    )
    before = baseline_versions(history, current, baseline, load_tags(history_dir))
    return compare_passes(now, before, swept)


def write_comparison(
    runs_dir: Path,
    run_ids: list[str],
    history_dir: Path,
    baseline: str | None,
    swept: list[str],
    table_path: Path,
    plot_path: Path,
) -> pd.DataFrame:
    table = comparison_table(runs_dir, run_ids, history_dir, baseline, swept)
    name = baseline or PREVIOUS
    write_table(
        table,
        table_path,
        f"Current pass against the baseline ({name})",
        empty_note="No configuration has a baseline yet: every run has one version so far.",
    )
    plot_before_after(table, name, plot_path)
    return table
