"""Where learned requests come from, read when the workflow is parsed: the study's resource profile, and what its
smoke test measured (one file each, a few for the smoke test: cheap on a login node)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

from mlpipe.io import read_json
from mlpipe.layout import META_NAME, RunFiles
from mlpipe.preprocess.fractions import COUNTS_KEY
from mlpipe.preprocess.split import TRAIN, planned_split_counts
from mlpipe.requests.estimate import Measurements
from mlpipe.requests.profile import PROFILE_NAME, load_profile, startup_seconds
from mlpipe.smoke.plan import STEPS_FOLDER


def gather_measurements(
    results_dir: Path, processed_dir: Path, smoke_results: Path, smoke_processed: Path, split: Mapping
) -> Measurements:
    """The study's profile; the smoke test's steps (by model), its train job's start-up, and the size of the
    study's training split (its meta.json, else planned from the counts the smoke test's preprocess recorded)."""
    steps = {}
    for path in sorted((smoke_results / STEPS_FOLDER).glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            step = read_json(path)
            steps[step["model"]] = step
    startups = []
    for run_info in sorted((smoke_results / "runs").glob(f"*/{RunFiles.of(Path()).run_info.name}")) if steps else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            usage = read_json(run_info)["usage"]
            startups.append(startup_seconds(usage["wall_seconds"], usage))
    return Measurements(
        profile=load_profile(results_dir / PROFILE_NAME),
        smoke_steps=steps,
        smoke_startup_seconds=max(startups) if startups else None,
        train_samples=_train_samples(processed_dir, smoke_processed, split) if steps else None,
    )


def _train_samples(processed_dir: Path, smoke_processed: Path, split: Mapping) -> int | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return int(read_json(processed_dir / META_NAME)["counts"]["train"])
    with contextlib.suppress(OSError, ValueError, KeyError, StopIteration):
        counts = read_json(smoke_processed / META_NAME)[COUNTS_KEY]
        return int(planned_split_counts(counts, split["val_fraction"], split["test_fraction"])[:, TRAIN].sum())
    return None
