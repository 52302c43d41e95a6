"""Random search and successive halving: the config, the ladder's arithmetic, and a real halving study run by
Snakemake (promotions by a checkpoint, every rung continuing where the last stopped, reuse after a change)."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, edit_config, job_env, snakemake
from mlpipe.config import ConfigError, check_config, load_schema, study_ladder
from mlpipe.io import read_json
from mlpipe.search.halving import configuration_of, ladder, rank, runs_of
from mlpipe.search.report import budget_table, ladder_table

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SPACE = {
    "lr": {"log_uniform": [1.0e-4, 0.3]},
    "momentum": {"uniform": [0.5, 0.99]},
    "batch_size": {"int": [16, 128]},
    "model_args.width": {"choice": [16, 32, 64]},
}


def config_with(sweep: dict, epochs: int = 9) -> dict:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["train"]["epochs"] = epochs
    config["sweep"] = {"grid": {}, "seeds": [0, 1], **sweep}
    return config


def test_random_samples_lie_in_their_space_and_adding_samples_keeps_the_others():
    five = check_config(config_with({"random": {"n": 5, "seed": 3, "space": SPACE}}), SCHEMA)
    eight = check_config(config_with({"random": {"n": 8, "seed": 3, "space": SPACE}}), SCHEMA)
    assert list(five) == [f"sample-{index:02d}_seed-{seed}" for index in range(5) for seed in (0, 1)]
    assert {run: eight[run] for run in five} == five  # same ids, same values
    for hparams in eight.values():
        assert 1.0e-4 <= hparams["lr"] <= 0.3 and 0.5 <= hparams["momentum"] <= 0.99
        assert isinstance(hparams["batch_size"], int) and 16 <= hparams["batch_size"] <= 128
        assert hparams["model_args"]["width"] in (16, 32, 64)
    assert five["sample-00_seed-0"] | {"seed": 1} == five["sample-00_seed-1"]  # seeds share a configuration
    assert len({hparams["lr"] for hparams in eight.values()}) == 8  # drawn, not repeated
    other_seed = check_config(config_with({"random": {"n": 5, "seed": 4, "space": SPACE}}), SCHEMA)
    assert other_seed["sample-00_seed-0"]["lr"] != five["sample-00_seed-0"]["lr"]


def test_random_samples_cross_the_grid():
    runs = check_config(
        config_with({"grid": {"weight_decay": [0.0, 0.001]}, "random": {"n": 2, "space": {"lr": SPACE["lr"]}}}),
        SCHEMA,
    )
    assert list(runs)[:2] == ["weight_decay-0_sample-00_seed-0", "weight_decay-0_sample-00_seed-1"]
    assert len(runs) == 8 and configuration_of("weight_decay-0_sample-00_seed-1") == "weight_decay-0_sample-00"


@pytest.mark.parametrize(
    "sweep, epochs, message",
    [
        ({"halving": {"eta": 1}}, 9, "sweep.halving.eta: 1 is less than the minimum of 2"),
        (
            {"grid": {"lr": [0.1, 0.2, 0.3]}, "halving": {"eta": 3, "min_epochs": 12}},
            9,
            "sweep.halving.min_epochs: 12 is more than train.epochs (9)",
        ),
        (
            {"grid": {"lr": [0.1, 0.2, 0.3, 0.4]}, "halving": {"eta": 3}},
            9,
            "sweep.halving: 4 configuration(s) cannot fill 3 rungs (1, 3, 9 epochs) with eta 3: the last would keep "
            "none; sweep at least 9, or raise min_epochs",
        ),
        (
            {"grid": {"epochs": [3, 9]}, "halving": {"eta": 2}},
            9,
            "sweep.halving: train.epochs is the budget its rungs climb to; do not sweep epochs",
        ),
        (
            {"grid": {"lr": [0.1]}, "random": {"n": 3, "space": {"lr": {"uniform": [0.1, 0.2]}}}},
            9,
            "sweep.random.space.lr: also swept in sweep.grid; sweep a key one way",
        ),
        (
            {"random": {"n": 3, "space": {"lr": {"gaussian": [0.1, 0.2]}}}},
            9,
            "sweep.random.space.lr: unknown distribution 'gaussian'; allowed: log_uniform, uniform, int, choice",
        ),
        ({"random": {"n": 3, "space": {"lr": {"uniform": [0.2, 0.1]}}}}, 9, "sweep.random.space.lr.uniform:"),
        ({"random": {"n": 3, "space": {"lr": {"log_uniform": [0.0, 0.1]}}}}, 9, "sweep.random.space.lr.log_uniform:"),
        ({"random": {"n": 3, "space": {"model_args.width": {"choice": []}}}}, 9, "choice: give a non-empty list"),
    ],
)
def test_search_settings_that_cannot_work_stop_with_one_line(sweep, epochs, message):
    with pytest.raises(ConfigError) as error:
        check_config(config_with(sweep, epochs), SCHEMA)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_ladder_of_27_configurations_with_eta_3_trains_a_quarter_of_the_grid():
    plan = ladder(27, eta=3, min_epochs=1, epochs=9)
    assert plan.rungs == (1, 3, 9) and plan.configurations == (27, 9, 3)
    assert plan.epochs_trained(seeds=2) == 2 * (27 * 1 + 9 * 2 + 3 * 6) == 126
    assert plan.keep_after(1) == 9 and plan.keep_after(3) == 3 and plan.start(2) == 3
    assert "126 epochs in all against the full grid's 486 (26%)" in plan.describe(seeds=2)
    assert ladder(10, eta=3, min_epochs=2, epochs=10).rungs == (2, 6, 10)  # the last rung is the budget
    one_rung = config_with({"grid": {"lr": [0.1, 0.2]}, "halving": {"eta": 2, "min_epochs": 3}}, 3)
    assert study_ladder(one_rung, check_config(one_rung, SCHEMA)) is None  # a single rung: no halving


def test_a_rung_ranks_configurations_by_mean_validation_accuracy_then_loss_never_test():
    records = [
        {"run_id": "lr-0.1_seed-0", "best_val_acc": 0.875, "best_val_loss": 0.3, "test_acc": 0.1},
        {"run_id": "lr-0.1_seed-1", "best_val_acc": 0.625, "best_val_loss": 0.3, "test_acc": 0.1},
        {"run_id": "lr-0.2_seed-0", "best_val_acc": 0.75, "best_val_loss": 0.5, "test_acc": 0.99},
        {"run_id": "lr-0.2_seed-1", "best_val_acc": 0.75, "best_val_loss": 0.0625, "test_acc": 0.99},
        {"run_id": "lr-0.3_seed-0", "best_val_acc": 0.5, "best_val_loss": 0.1, "test_acc": 0.99},
        {"run_id": "lr-0.3_seed-1", "best_val_acc": 0.6, "best_val_loss": 0.1, "test_acc": 0.99},
    ]
    ranking = rank(records, keep=1)
    assert [row["configuration"] for row in ranking] == ["lr-0.2", "lr-0.1", "lr-0.3"]  # tie at 0.75: lower loss
    assert [row["promoted"] for row in ranking] == [True, False, False] and ranking[0]["seeds"] == 2
    run_ids = [record["run_id"] for record in records]
    assert runs_of(["lr-0.3", "lr-0.1"], run_ids) == [
        "lr-0.1_seed-0",
        "lr-0.1_seed-1",
        "lr-0.3_seed-0",
        "lr-0.3_seed-1",
    ]


def test_the_budget_table_counts_each_rungs_new_epochs_against_the_full_grid():
    promotions = [
        {
            "epochs": 1,
            "ranking": [
                {"configuration": f"c{i}", "seeds": 2, "val_acc": i / 10, "val_loss": 1.0, "promoted": i >= 5}
                for i in range(9)
            ],
        },
        {
            "epochs": 3,
            "ranking": [
                {"configuration": f"c{i}", "seeds": 2, "val_acc": i / 10, "val_loss": 1.0, "promoted": i == 8}
                for i in range(5, 9)
            ],
        },
    ]
    final = [{"run_id": f"c8_seed-{seed}", "best_val_acc": 0.9, "best_val_loss": 0.2} for seed in (0, 1)]
    table = budget_table(ladder_table(promotions, final, epochs=9)).set_index("rung")
    assert table["epochs_trained"].to_dict() == {"1": 18, "2-3": 16, "4-9": 12, "all rungs": 46, "full grid": 162}
    assert table.loc["all rungs", "share_of_full_grid"] == round(46 / 162, 3)


HALVING_STUDY = {
    "train": {"epochs": 2},
    "sweep": {
        "grid": {},
        "seeds": [0],
        "random": {"n": 4, "seed": 0, "space": {"lr": {"log_uniform": [1.0e-3, 0.3]}}},
        "halving": {"eta": 2, "min_epochs": 1},
    },
}
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) ")


def epochs_trained(workdir: Path, since: float = 0.0) -> list[tuple[str, int]]:
    """(run, epoch) of each epoch trained by the train and train_rung jobs whose logs were written after ``since``."""
    trained = []
    for log in sorted((workdir / "results" / "logs").glob("train*/**/*.log")):
        if log.stat().st_mtime > since:
            trained += [(log.stem, int(match[1])) for match in EPOCH_LINE.finditer(log.read_text())]
    return trained


def jobs_run(result) -> dict[str, int]:
    """Jobs a Snakemake run executed, by rule."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", result.stdout + result.stderr, re.MULTILINE):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def test_a_halving_study_promotes_by_a_checkpoint_trains_no_epoch_twice_and_reuses_its_rungs(tmp_path):
    workdir = copy_workflow(tmp_path / "project")
    edit_config(workdir, HALVING_STUDY)
    without_grid(workdir)
    results = workdir / "results"
    plan = snakemake(workdir, "-n", "--cores", "2")
    assert (
        "successive halving of 4 configurations x 1 seed(s), configurations to epochs per rung: 4 to 1, 2 to 2; "
        "6 epochs in all against the full grid's 8 (75%)" in plan.stdout + plan.stderr
    )
    assert jobs_run(plan)["train_rung"] == 4  # the first rung's jobs; the next is known after its promotion

    first = snakemake(workdir, "--cores", "2")
    expected = {"train_rung": 4, "promote": 1, "train": 2, "evaluate": 2, "ladder": 1}
    assert {rule: count for rule, count in jobs_run(first).items() if rule in expected} == expected
    promotion = read_json(results / "halving" / "promoted-1.json")
    rung_one = {path.stem: read_json(path) for path in (results / "halving" / "rung-1").glob("*.json")}
    assert sorted(rung_one) == [f"sample-{index:02d}_seed-0" for index in range(4)]
    assert promotion["promoted"] == [row["configuration"] for row in rank(rung_one.values(), keep=2)][:2]
    finalists = [f"{configuration}_seed-0" for configuration in promotion["promoted"]]
    summary = pd.read_csv(results / "summary.csv")
    assert sorted(summary["run_id"]) == sorted(finalists)  # the tables cover the finalists
    for run_id in finalists:
        assert json.loads((results / "runs" / run_id / "run_config.json").read_text())["hparams"]["lr"] == next(
            hparams["lr"] for name, hparams in check_config_of(workdir).items() if name == run_id
        )
        assert len(pd.read_csv(results / "runs" / run_id / "metrics.csv")) == 2
    trained = epochs_trained(workdir)
    assert sorted(trained) == sorted({(run, 1) for run in rung_one} | {(run, 2) for run in finalists})
    budget = pd.read_csv(results / "halving_budget.csv").set_index("rung")
    assert budget.loc["all rungs", "epochs_trained"] == 6 and budget.loc["full grid", "epochs_trained"] == 8
    assert (results / "plots" / "ladder.png").stat().st_size > 10_000

    # More configurations and a larger budget: every finished rung is reused, nothing trains twice.
    edit_config(workdir, {"train": {"epochs": 4}, "sweep": {"random": {"n": 5}}})
    started = max(log.stat().st_mtime for log in (results / "logs").glob("train*/**/*.log"))
    second = snakemake(workdir, "--cores", "2")
    new_epochs = epochs_trained(workdir, since=started)
    all_epochs = trained + new_epochs
    assert len(all_epochs) == len(set(all_epochs)), "an epoch was trained twice"
    assert ("sample-04_seed-0", 1) in new_epochs and not [
        run for run, epoch in new_epochs if epoch == 1 and run != "sample-04_seed-0"
    ]
    assert {epoch for _, epoch in new_epochs if epoch > 2} == {3, 4}  # the finalist trained on from its rung
    finalist = read_json(results / "halving" / "promoted-2.json")["promoted"]
    assert len(finalist) == 1 and pd.read_csv(results / "summary.csv")["run_id"].tolist() == [f"{finalist[0]}_seed-0"]
    assert jobs_run(second).get("train", 0) == 1
    # make status: runs stopped at a rung of the old budget are where they stopped, not waiting to start.
    shown = subprocess.run(
        [sys.executable, "scripts/status.py"], cwd=workdir, env=job_env(), capture_output=True, text=True, check=True
    ).stdout
    promoted_ever = {*promotion["promoted"], *read_json(results / "halving" / "promoted-1.json")["promoted"]}
    stopped_at_one = [run for run in rung_one if configuration_of(run) not in promoted_ever]
    assert stopped_at_one
    assert all(re.search(rf"^{run}\s+stopped\s+-\s+1\s+1/4 ", shown, re.M) for run in stopped_at_one), shown
    assert re.search(rf"^{finalist[0]}_seed-0\s+finished\s+-\s+\d+\s+4/4 ", shown, re.M), shown


def without_grid(workdir: Path) -> None:
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["sweep"]["grid"] = {}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def check_config_of(workdir: Path) -> dict[str, dict]:
    return check_config(yaml.safe_load((workdir / "config" / "config.yaml").read_text()), SCHEMA)
