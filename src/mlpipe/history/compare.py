"""Did an edit help? The current pass of a study against a baseline, per configuration, over seeds.

The baseline is, per run, the version it had before its current one (the previous pass of each
configuration), or the versions a tag names. Runs that differ only in seed form a configuration, keyed by the
values of the keys the study sweeps now. Each configuration gets, on both sides, the mean and 95% interval of
its best validation accuracy and its test accuracy, then the difference with its Welch interval and p-value,
and what differs between the two sides: hyperparameters, code files, git commits, data. Configurations found
on one side only are listed, not compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from mlpipe.analysis.stats import ACCURACY_BOUNDS, configuration_label, difference_of_means, mean_and_interval
from mlpipe.history.passes import check_baseline
from mlpipe.history.store import Version
from mlpipe.hparams import hparam

PREVIOUS = "previous"  # the baseline's name when none is configured
METRICS = {"val_acc": "best_val_acc", "test_acc": "test_accuracy"}  # column -> where a version keeps it
BOTH, CURRENT_ONLY, BASELINE_ONLY = "compared", "only in the current pass", "only in the baseline"


def evaluated(versions: Mapping[str, Version]) -> dict[str, Version]:
    return {run_id: found for run_id, found in versions.items() if found.evaluation is not None}


def previous_versions(history: Mapping[str, Mapping[str, Version]], current: Mapping[str, str]) -> dict[str, Version]:
    """Per run, its latest evaluated version older than the current one."""
    baseline = {}
    for run_id, version in current.items():
        earlier = [found for name, found in history.get(run_id, {}).items() if name < version and found.evaluation]
        if earlier:
            baseline[run_id] = earlier[-1]
    return baseline


def baseline_versions(
    history: Mapping[str, Mapping[str, Version]], current: Mapping[str, str], baseline: str | None, tags: Mapping
) -> dict[str, Version]:
    """The versions to compare with: ``baseline`` None for the previous pass of each run, else a tag's."""
    if baseline is None:
        return previous_versions(history, current)
    check_baseline(baseline, tags)
    named = tags[baseline]["runs"].items()
    return evaluated(
        {run_id: history[run_id][version] for run_id, version in named if version in history.get(run_id, {})}
    )


def compare_passes(current: Mapping[str, Version], baseline: Mapping[str, Version], swept: list[str]) -> pd.DataFrame:
    """One row per configuration: both sides' statistics, the difference, and what changed."""
    sides = {"current": by_configuration(current, swept), "baseline": by_configuration(baseline, swept)}
    labels = list(dict.fromkeys([*sides["current"], *sides["baseline"]]))
    rows = []
    for label in labels:
        now, before = sides["current"].get(label, []), sides["baseline"].get(label, [])
        row = {"configuration": label, "status": BOTH if now and before else CURRENT_ONLY if now else BASELINE_ONLY}
        row |= {"n_current": len(now), "n_baseline": len(before)}
        for column, key in METRICS.items():
            values = {
                side: pd.Series([_metric(found, key) for found in group])
                for side, group in (("current", now), ("baseline", before))
            }
            for side, series in values.items():
                interval = mean_and_interval(series, ACCURACY_BOUNDS) if len(series) else {}
                for statistic in ("mean", "ci95_low", "ci95_high"):
                    row[f"{column}_{side}_{statistic}"] = interval.get(statistic, math.nan)
            if now and before:
                row |= {
                    f"{column}_{name}": value
                    for name, value in difference_of_means(values["current"], values["baseline"]).items()
                }
        row["changed"] = what_changed(now, before) if now and before else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=_columns())


def what_changed(current: list[Version], baseline: list[Version]) -> str:
    """What differs between the versions of one configuration on the two sides, as one line."""
    parts = []
    keys = sorted({key for found in [*current, *baseline] for key in found.record["hparams"]} - {"seed"})
    for key in keys:
        now, before = _values(current, key), _values(baseline, key)
        if now != before:
            parts.append(f"{key} {'/'.join(before)} -> {'/'.join(now)}")
    files = _changed_files(current[0].record.get("code", {}), baseline[0].record.get("code", {}))
    if files:
        parts.append(f"code: {', '.join(files)}")
    commits = {
        side: sorted({_commit(found) for found in group}) for side, group in (("now", current), ("before", baseline))
    }
    if commits["now"] != commits["before"]:
        parts.append(f"commit {'/'.join(commits['before'])} -> {'/'.join(commits['now'])}")
    if {found.record.get("data", {}).get("checksum") for found in current} != {
        found.record.get("data", {}).get("checksum") for found in baseline
    }:
        parts.append("data")
    return "; ".join(parts) or "nothing recorded differs"


def by_configuration(versions: Mapping[str, Version], swept: list[str]) -> dict[str, list[Version]]:
    groups: dict[str, list[Version]] = {}
    for found in versions.values():
        values = {key: _hparam(found.record["hparams"], key) for key in swept}
        groups.setdefault(configuration_label(values), []).append(found)
    return groups


def _hparam(hparams: Mapping, key: str):
    try:
        return hparam(hparams, key)
    except KeyError:
        return None


def _metric(found: Version, key: str) -> float:
    source = found.record if key in found.record else found.evaluation
    return float(source[key])


def _values(versions: list[Version], key: str) -> list[str]:
    return sorted({str(found.record["hparams"].get(key)) for found in versions})


def _changed_files(now: Mapping[str, str], before: Mapping[str, str]) -> list[str]:
    return sorted(name for name in {*now, *before} if now.get(name) != before.get(name))


def _commit(found: Version) -> str:
    provenance = found.record.get("provenance", {})
    commit = (provenance.get("git_commit") or "none")[:7]
    return f"{commit}+dirty" if provenance.get("git_dirty") else commit


def _columns() -> list[str]:
    columns = ["configuration", "status", "n_current", "n_baseline"]
    for column in METRICS:
        for side in ("current", "baseline"):
            columns += [f"{column}_{side}_{statistic}" for statistic in ("mean", "ci95_low", "ci95_high")]
        columns += [f"{column}_{name}" for name in ("diff", "diff_ci95_low", "diff_ci95_high", "p_value")]
    return [*columns, "changed"]
