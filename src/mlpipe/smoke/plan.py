"""The study in miniature: what ``smoke: true`` changes in the config and the runs."""

from __future__ import annotations

from collections.abc import Mapping

SUBSET = 256  # training samples of the miniature (as many of each class)
SMOKE_FOLDER = "smoke"  # results and resumable state go below the study's own folders, in one of this name
STEPS_FOLDER = "smoke_steps"  # in the miniature's results: one JSON per model, its step at the largest batch
STEP_MINUTES = 10  # walltime of the job that times one step at full batch size
BATCH_CAP = SUBSET // 4  # a miniature's batches: a few steps per epoch out of its few hundred samples


def miniature(config: dict, runs: Mapping[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Turn ``config`` (in place) and ``runs`` into the study's miniature.

    Returns the miniature's runs (the study's first run of each distinct model, one epoch, batches its few
    samples can fill) and its probes: per model, by index, the run with the study's largest batch, whose one
    step at full size shows its speed and memory.
    """
    for folder in ("results_dir", "data_root", "checkpoint_root"):  # nothing of the study's is touched
        config[folder] = f"{config[folder]}/{SMOKE_FOLDER}"
    config["dataset"]["subset"] = min(config["dataset"]["subset"] or SUBSET, SUBSET)
    config["compare"]["baseline"] = None  # the study's tags are not the miniature's
    first: dict[str, tuple[str, dict]] = {}
    largest: dict[str, dict] = {}
    for run_id, hparams in runs.items():
        first.setdefault(hparams["model"], (run_id, hparams))
        if hparams["batch_size"] > largest.get(hparams["model"], {}).get("batch_size", 0):
            largest[hparams["model"]] = hparams
    small_runs = {
        run_id: {**hparams, "epochs": 1, "batch_size": min(hparams["batch_size"], BATCH_CAP)}
        for run_id, hparams in first.values()
    }
    probes = {str(index): hparams for index, hparams in enumerate(largest.values())}
    return small_runs, probes
