"""Config checks: every mistake stops before any job with one line naming the key."""

from __future__ import annotations

import copy
import json
import shlex
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO, edit_config, snakemake
from mlpipe.config import ConfigError, check_batch_split, check_config, expand_sweep, load_schema, train_defaults
from mlpipe.models.factory import BUILTIN_MODELS

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def checked(overrides: dict | None = None, remove: tuple[str, ...] = ()) -> dict[str, dict]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section].update(values)
        else:
            config[section] = values
    for dotted in remove:
        section, key = dotted.split(".")
        del config[section][key]
    return check_config(config, SCHEMA)


def test_default_config_defines_four_readable_runs():
    runs = checked()
    assert list(runs) == ["lr-0.05_seed-0", "lr-0.05_seed-1", "lr-0.1_seed-0", "lr-0.1_seed-1"]
    assert runs["lr-0.1_seed-1"]["lr"] == 0.1 and runs["lr-0.1_seed-1"]["seed"] == 1
    assert runs["lr-0.1_seed-1"]["epochs"] == DEFAULT_CONFIG["train"]["epochs"]


def test_every_default_config_key_is_in_the_schema_with_the_same_default():
    def compare(values: dict, schema: dict, prefix: str) -> None:
        for key, value in values.items():
            property_schema = schema["properties"][key]
            if isinstance(value, dict) and "properties" in property_schema:
                compare(value, property_schema, f"{prefix}{key}.")
            else:
                assert property_schema["default"] == value, f"{prefix}{key}"

    compare({key: value for key, value in DEFAULT_CONFIG.items() if key != "sweep"}, SCHEMA, "")


def test_every_schema_key_has_a_description():
    def undescribed(schema: dict, prefix: str) -> list[str]:
        found = []
        for key, property_schema in schema.get("properties", {}).items():
            if not property_schema.get("description"):
                found.append(f"{prefix}{key}")
            found += undescribed(property_schema, f"{prefix}{key}.")
        return found

    assert undescribed(SCHEMA, "") == []


def test_missing_keys_take_schema_defaults():
    runs = checked(remove=("train.label_smoothing", "train.warmup_epochs"))
    first = next(iter(runs.values()))
    assert first["label_smoothing"] == 0.0 and first["warmup_epochs"] == 1


def test_run_ids_use_every_swept_key_in_config_order():
    runs = checked({"sweep": {"grid": {"batch_size": [32], "model": ["small_cnn", "airbench"]}, "seeds": [3]}})
    assert list(runs) == ["batch_size-32_model-small_cnn_seed-3", "batch_size-32_model-airbench_seed-3"]
    assert runs["batch_size-32_model-airbench_seed-3"]["model"] == "airbench"


def test_run_ids_stay_the_same_when_an_unswept_key_changes():
    assert list(checked({"train": {"epochs": 99}})) == list(checked())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train": {"epochs": -1}}, "train.epochs: -1 is less than the minimum of 1"),
        ({"train": {"epochs": "ten"}}, "train.epochs: 'ten' is not of type 'integer'"),
        ({"train": {"optimizer": "lion"}}, "train.optimizer: 'lion' is not allowed; allowed: sgd, adamw"),
        ({"train": {"colour": "red"}}, "train: unknown key(s) colour; allowed: model, model_args, epochs,"),
        ({"sparkle": 1}, "config: unknown key(s) sparkle; allowed: results_dir,"),
        (
            {"train": {"model": "resnet9000"}},
            f"train.model: unknown model 'resnet9000'; allowed: {', '.join(BUILTIN_MODELS)}, torchvision.<name>,",
        ),
        ({"dataset": {"name": "imagenet22k"}}, "dataset.name: unknown dataset 'imagenet22k'; allowed: digits"),
        ({"sweep": {"grid": {"lr": []}}}, "sweep.grid.lr: [] should be non-empty"),
        ({"sweep": {"seeds": []}}, "sweep.seeds: [] should be non-empty"),
        (
            {"sweep": {"grid": {"learning_rate": [0.1]}}},
            "sweep.grid.learning_rate: unknown hyperparameter; allowed: model, model_args.<name>, epochs,",
        ),
        ({"sweep": {"grid": {"lr": [0.1, -0.1]}}}, "sweep.grid.lr[1]: -0.1 is less than or equal to the minimum of 0"),
        ({"sweep": {"grid": {"model": ["small_cnn", "bogus"]}}}, "sweep.grid.model: unknown model 'bogus'"),
        ({"sweep": {"grid": {"lr": [0.1, 0.10]}}}, "sweep.grid: two grid points give the same run id 'lr-0.1_seed-0'"),
        ({"dataset": {"val_fraction": 1.5}}, "dataset.val_fraction: 1.5 is greater than or equal to the maximum of 1"),
    ],
)
def test_invalid_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        checked(overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_batch_that_does_not_split_over_the_gpus_is_refused():
    runs = checked({"sweep": {"grid": {"batch_size": [64, 66]}, "seeds": [0]}})
    check_batch_split(runs, 1)  # one process takes any batch
    with pytest.raises(ConfigError, match=r"^train.batch_size: 66 does not split evenly over train_job.gpus=4; "):
        check_batch_split(runs, 4)


def test_expand_sweep_without_grid_gives_one_run_per_seed():
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["sweep"] = {"grid": {}, "seeds": [0, 1, 2]}
    check_config(config, SCHEMA)
    assert list(expand_sweep(config, SCHEMA)) == ["seed-0", "seed-1", "seed-2"]


def test_enabling_a_tracker_that_is_not_installed_is_a_config_error(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "wandb" else real_find_spec(name))
    with pytest.raises(
        ConfigError, match=r"tracking.wandb.enabled: the wandb package is not installed \(pip install wandb, or pip"
    ):
        checked({"tracking": {"wandb": {"enabled": True}}})
    checked({"tracking": {"wandb": {"enabled": False}}})  # disabled: nothing needed


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train": {"epochs": -3}}, "config error: train.epochs: -3 is less than the minimum of 1"),
        ({"train": {"model": "nope"}}, "config error: train.model: unknown model 'nope'"),
        ({"sweep": {"grid": {"lr": []}}}, "config error: sweep.grid.lr: [] should be non-empty"),
    ],
)
def test_snakemake_stops_with_one_line_before_any_job(workflow_copy: Path, overrides, message):
    edit_config(workflow_copy, overrides)
    result = snakemake(workflow_copy, "--cores", "1", check=False)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert error_lines[-1].startswith(message)
    assert "Traceback" not in result.stderr
    assert not (workflow_copy / "data").exists()
    assert not (workflow_copy / "results" / "logs").exists()


LAB_MODEL = """
from torch import nn


class MyNet(nn.Module):
    def __init__(self, in_channels, num_classes, width=32, dropout=0.1):
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)
"""
LAB_DATASET = """
from torch.utils.data import Dataset


class Windows(Dataset):
    def __init__(self, root, split="train", transform=None):
        self.root = root
"""


def lab_files(folder: Path) -> None:
    (folder / "src" / "models").mkdir(parents=True)
    (folder / "src" / "data").mkdir(parents=True)
    (folder / "src" / "models" / "model.py").write_text(LAB_MODEL)
    (folder / "src" / "data" / "dataset.py").write_text(LAB_DATASET)


def test_a_lab_model_takes_arguments_and_one_can_be_swept_with_readable_run_ids(lab_project):
    lab_files(lab_project)
    runs = checked(
        {
            "train": {"model": "src/models/model.py:MyNet", "model_args": {"width": 16, "dropout": 0.2}},
            "sweep": {"grid": {"model_args.width": [16, 64], "lr": [0.1]}, "seeds": [0]},
        }
    )
    assert list(runs) == ["model_args.width-16_lr-0.1_seed-0", "model_args.width-64_lr-0.1_seed-0"]
    assert runs["model_args.width-64_lr-0.1_seed-0"]["model_args"] == {"width": 64, "dropout": 0.2}
    assert runs["model_args.width-16_lr-0.1_seed-0"]["model_args"] == {"width": 16, "dropout": 0.2}


def test_a_swept_lab_model_is_named_by_its_class_in_the_run_id(lab_project):
    lab_files(lab_project)
    runs = checked({"sweep": {"grid": {"model": ["small_cnn", "src/models/model.py:MyNet"]}, "seeds": [0]}})
    assert list(runs) == ["model-small_cnn_seed-0", "model-MyNet_seed-0"]
    assert runs["model-MyNet_seed-0"]["model"] == "src/models/model.py:MyNet"


def test_a_custom_dataset_is_checked_against_its_constructor(lab_project):
    lab_files(lab_project)
    dataset = {"name": "custom", "custom": {"class": "src/data/dataset.py:Windows", "args": {"root": "raw"}}}
    checked({"dataset": dataset})


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"train": {"model": "my_models.py:MyNet"}},
            "train.model: no such file my_models.py (relative to the workflow",
        ),
        ({"train": {"model": "src/models/model.py"}}, "train.model: 'src/models/model.py' names a file but no class; "),
        ({"train": {"model": "src/models/model.py:Net"}}, "train.model: src/models/model.py defines no Net"),
        (
            {"train": {"model": "src/models/model.py:MyNet", "model_args": {"widht": 8}}},
            "train.model_args: MyNet takes no argument 'widht'; its parameters: in_channels, num_classes, width,",
        ),
        (
            {"train": {"model": "src/models/model.py:MyNet"}, "sweep": {"grid": {"model_args.depth": [2]}}},
            "sweep.grid.model_args.depth: MyNet takes no argument 'depth'; its parameters:",
        ),
        ({"sweep": {"grid": {"model_args": [{"width": 8}]}}}, "sweep.grid.model_args: sweep one argument at a time"),
        (
            {"dataset": {"name": "custom"}},
            "dataset.custom.class: required for dataset custom: your torch Dataset class",
        ),
        (
            {"dataset": {"name": "custom", "custom": {"class": "src/data/dataset.py:Windows"}}},
            "dataset.custom.args: Windows needs 'root'; set dataset.custom.args.root in the config",
        ),
        (
            {
                "dataset": {
                    "name": "custom",
                    "custom": {"class": "src/data/dataset.py:Windows", "args": {"root": "r", "x": 1}},
                }
            },
            "dataset.custom.args: Windows takes no argument 'x'; its parameters: root, split, transform",
        ),
        (
            {
                "dataset": {
                    "name": "custom",
                    "custom": {"class": "src/data/dataset.py:Windows", "args": {"split": "all"}},
                }
            },
            "dataset.custom.args.split: mlpipe passes it itself (to read the train and test splits); remove it",
        ),
    ],
)
def test_a_lab_class_that_cannot_be_used_names_the_key(lab_project, overrides, message):
    lab_files(lab_project)
    with pytest.raises(ConfigError) as error:
        checked(overrides)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_syntax_error_in_the_labs_model_stops_snakemake_with_file_and_line(workflow_copy: Path):
    (workflow_copy / "lab").mkdir()
    (workflow_copy / "lab" / "model.py").write_text("from torch import nn\n\n\nclass MyNet(nn.Module)\n    pass\n")
    edit_config(workflow_copy, {"train": {"model": "lab/model.py:MyNet"}})
    result = snakemake(workflow_copy, "--cores", "1", check=False)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert error_lines[-1] == "config error: train.model: lab/model.py line 4: expected ':'"
    assert "Traceback" not in result.stderr
    assert not (workflow_copy / "data").exists()


def test_strings_that_are_plain_numbers_are_read_as_the_schemas_types():
    # PyYAML reads 1e-3 and 1.0e9 as strings (YAML 1.1 wants a dot and a signed exponent); --config passes
    # nested values as strings. Both mean the number.
    runs = checked(
        {
            "train": {"lr": "1e-3", "weight_decay": "1.0e-4", "epochs": "2", "flip": "true", "ema_decay": "null"},
            "train_job": {"gpus": "2", "stage_to_tmpdir": "false"},
            "dataset": {"image_folder": {"channels": "1", "size": ["16", "16"], "root": None}},
            "sweep": {"grid": {"lr": ["1e-3", "1.0e9"], "batch_size": ["32"]}, "seeds": ["0", "1"]},
        }
    )
    assert list(runs) == [
        "lr-0.001_batch_size-32_seed-0",
        "lr-0.001_batch_size-32_seed-1",
        "lr-1e+09_batch_size-32_seed-0",
        "lr-1e+09_batch_size-32_seed-1",
    ]
    first = runs["lr-0.001_batch_size-32_seed-0"]
    assert first["lr"] == 0.001 and first["batch_size"] == 32 and first["seed"] == 0
    assert (first["weight_decay"], first["epochs"], first["flip"], first["ema_decay"]) == (1e-4, 2, True, None)
    assert type(first["epochs"]) is int and type(first["lr"]) is float


def test_the_config_itself_holds_the_numbers_after_the_check():
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["train"]["lr"] = "1e-3"
    config["train_job"]["gpus"] = "2"
    config["sweep"]["grid"] = {"lr": ["1e-2"]}
    check_config(config, SCHEMA)
    assert config["train"]["lr"] == 0.001 and config["train_job"]["gpus"] == 2
    assert config["sweep"]["grid"]["lr"] == [0.01]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train": {"epochs": "2.5"}}, "train.epochs: '2.5' is not of type 'integer'"),
        ({"train": {"lr": "nan"}}, "train.lr: 'nan' is not of type 'number'"),
        ({"train": {"lr": "1e-3x"}}, "train.lr: '1e-3x' is not of type 'number'"),
        ({"train": {"flip": "yes"}}, "train.flip: 'yes' is not of type 'boolean'"),
        ({"train": {"model": "3"}}, "train.model: unknown model '3'"),
        ({"train": {"epochs": "-1"}}, "train.epochs: -1 is less than the minimum of 1"),
        ({"sweep": {"grid": {"lr": ["1e-3", "fast"]}}}, "sweep.grid.lr[1]: 'fast' is not of type 'number'"),
        ({"dataset": {"image_folder": {"channels": "2"}}}, "dataset.image_folder.channels: '2' is not allowed;"),
    ],
)
def test_strings_that_are_not_exactly_a_value_of_the_wanted_type_stay_errors(overrides, message):
    with pytest.raises(ConfigError) as error:
        checked(overrides)
    assert message in str(error.value)


def test_a_learning_rate_written_1e_3_in_config_yaml_is_accepted(workflow_copy: Path):
    config_file = workflow_copy / "config" / "config.yaml"
    text = config_file.read_text()
    assert "lr: 0.05\n" in text
    config_file.write_text(text.replace("lr: 0.05\n", "lr: 1e-3\n").replace("- 0.05\n", "- 1e-3\n"))
    result = snakemake(workflow_copy, "-n", "--quiet", "rules")
    assert "train" in result.stdout
    plan = snakemake(workflow_copy, "-n", "results/runs/lr-0.001_seed-0/metrics.csv").stdout
    assert "lr-0.001_seed-0" in plan


def test_nested_command_line_config_values_take_the_schemas_types(workflow_copy: Path):
    result = snakemake(workflow_copy, "-n", "--config", "train={epochs: 2, lr: 1e-3}", "sweep={seeds: [0, 5]}")
    assert "lr-0.05_seed-5" in result.stdout
    wrong = snakemake(workflow_copy, "-n", "--config", "train={epochs: two}", check=False)
    assert wrong.returncode != 0
    assert [line for line in wrong.stderr.splitlines() if line.strip()][-1] == (
        "config error: train.epochs: 'two' is not of type 'integer'"
    )


def test_a_yaml_syntax_error_in_config_yaml_is_named_with_its_line(workflow_copy: Path):
    config_file = workflow_copy / "config" / "config.yaml"
    lines = config_file.read_text().splitlines()
    lines[lines.index("  epochs: 3")] = "  epochs: [3"
    config_file.write_text("\n".join(lines) + "\n")
    result = snakemake(workflow_copy, "-n", check=False)
    assert result.returncode != 0
    last_line = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last_line.startswith("config error: config/config.yaml, line ")
    assert "(while parsing a flow sequence on line " in last_line
    assert "Traceback" not in result.stderr


def planned_run_ids(workdir: Path, *args: str) -> list[str]:
    """The runs a dry run would train, in order."""
    plan = snakemake(workdir, "-n", *args).stdout
    return sorted({line.split("run=")[1] for line in plan.splitlines() if "wildcards: run=" in line})


def test_an_override_files_grid_replaces_the_base_grid_whole(workflow_copy: Path):
    # config/config.yaml sweeps lr; an override sweeping a model argument sweeps only that.
    (workflow_copy / "widths.yaml").write_text("sweep:\n  grid:\n    model_args.width: [16, 32]\n")
    assert planned_run_ids(workflow_copy, "--configfile", "widths.yaml") == [
        "model_args.width-16_seed-0",
        "model_args.width-32_seed-0",
    ]
    # Of two override files, the later grid wins whole; seeds, given or not, are kept key by key.
    (workflow_copy / "seeds.yaml").write_text("sweep:\n  grid:\n    batch_size: [32]\n  seeds: [4]\n")
    assert planned_run_ids(workflow_copy, "--configfile", "widths.yaml", "seeds.yaml") == ["batch_size-32_seed-4"]
    # --config, given after the files, replaces theirs; an override without a grid keeps the one before it.
    command_line = ("--config", "sweep={grid: {model_args.width: [8]}}")
    assert planned_run_ids(workflow_copy, "--configfile", "widths.yaml", *command_line) == ["model_args.width-8_seed-0"]
    (workflow_copy / "epochs.yaml").write_text("train:\n  epochs: 2\nsweep:\n  seeds: [0, 1]\n")
    assert planned_run_ids(workflow_copy, "--configfile", "epochs.yaml") == [
        "lr-0.05_seed-0",
        "lr-0.05_seed-1",
        "lr-0.1_seed-0",
        "lr-0.1_seed-1",
    ]


def last_error_line(result) -> str:
    return [line for line in result.stderr.splitlines() if line.strip()][-1]


def test_a_key_written_twice_in_config_yaml_is_refused_naming_both_lines(workflow_copy: Path):
    # The README's example: `epochs: 3` added at the end of config/config.yaml's train section, which has epochs: 12.
    text = (REPO / "config" / "config.yaml").read_text()
    assert text.count("  epochs: 12\n") == 1
    (workflow_copy / "config" / "config.yaml").write_text(
        text.replace("  gpu_memory_headroom: 0.2\n", "  gpu_memory_headroom: 0.2\n  epochs: 3\n")
    )
    result = snakemake(workflow_copy, "-n", check=False)
    assert result.returncode != 0
    line = last_error_line(result)
    assert line.startswith("config error: config/config.yaml, line ") and "key 'epochs' is written twice" in line
    assert f"\n{line}\n" in (REPO / "README.md").read_text()
    assert not (workflow_copy / "data").exists()


def test_a_key_written_twice_in_an_override_file_is_refused_naming_both_lines(workflow_copy: Path):
    (workflow_copy / "study.yaml").write_text("train:\n  lr: 0.1\nsweep:\n  seeds: [0]\ntrain:\n  epochs: 2\n")
    result = snakemake(workflow_copy, "-n", "--configfile", "study.yaml", check=False)
    assert result.returncode != 0
    assert last_error_line(result) == (
        "config error: study.yaml, line 5, column 1: key 'train' is written twice (first on line 1); "
        "YAML would keep the later silently: remove one"
    )


def planned_model_args(workdir: Path, *args: str) -> dict[str, dict]:
    """{run id: the model_args its train job gets}, read from the dry run's train commands."""
    plan = snakemake(workdir, "-n", "-p", *args).stdout
    commands = [line.split(": ", 1)[1] for line in plan.splitlines() if "python scripts/train.py" in line]
    found = {}
    for command in commands:
        words = shlex.split(command)
        found[words[words.index("--run-id") + 1]] = json.loads(words[words.index("--hparams") + 1])["model_args"]
    return found


def test_numbers_for_the_model_given_on_the_command_line_reach_it_as_numbers(workflow_copy: Path):
    # --config passes nested values as strings: width '16' reached nn.Conv2d and failed there, in the train job.
    given = planned_model_args(workflow_copy, "--config", "train={model_args: {width: 16, dropout: 2e-1}}")
    assert given == {run_id: {"width": 16, "dropout": 0.2} for run_id in ("lr-0.05_seed-0", "lr-0.1_seed-0")}
    swept = planned_model_args(workflow_copy, "--config", "sweep={grid: {model_args.width: [16, 32]}}")
    assert swept == {"model_args.width-16_seed-0": {"width": 16}, "model_args.width-32_seed-0": {"width": 32}}
    assert all(type(args["width"]) is int for args in [*given.values(), *swept.values()])


def test_model_args_strings_that_are_plain_values_are_read_as_them_and_others_stay_strings():
    runs = checked(
        {
            "train": {"model_args": {"width": "16", "dropout": "1e-1"}},
            "sweep": {"grid": {"model_args.width": ["8", "16"]}, "seeds": [0]},
        }
    )
    assert [hparams["model_args"] for hparams in runs.values()] == [
        {"width": 8, "dropout": 0.1},
        {"width": 16, "dropout": 0.1},
    ]
    with pytest.raises(ConfigError, match=r"^train.model_args: SmallCNN takes no argument 'activation'"):
        checked({"train": {"model_args": {"activation": "relu"}}})


def test_the_lab_guides_model_taking_only_num_classes_passes_the_check(workflow_copy: Path):
    from test_user_code import GUIDE_MODEL_VERBATIM

    (workflow_copy / "src" / "models").mkdir()
    (workflow_copy / "src" / "models" / "model.py").write_text(textwrap.dedent(GUIDE_MODEL_VERBATIM))
    edit_config(workflow_copy, {"train": {"model": "src/models/model.py:MyModel"}})
    assert "train" in snakemake(workflow_copy, "-n", "--quiet", "rules").stdout


def test_a_train_key_added_to_the_schema_reaches_every_run_the_sweep_and_code_that_trains_alone():
    # CONTRIBUTING's recipe for a config key that reaches training, e.g. train.grad_clip: the schema entry is all.
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["train"]["properties"]["grad_clip"] = {
        "type": ["number", "null"],
        "default": None,
        "description": "Clip the gradient norm to this; null: off.",
    }
    runs = check_config(copy.deepcopy(DEFAULT_CONFIG), schema)
    assert {hparams["grad_clip"] for hparams in runs.values()} == {None}
    config = copy.deepcopy(DEFAULT_CONFIG) | {"sweep": {"grid": {"grad_clip": ["1.0", 2]}, "seeds": [0]}}
    assert list(check_config(config, schema)) == ["grad_clip-1_seed-0", "grad_clip-2_seed-0"]
    defaults = train_defaults(schema, lr=0.1)
    assert (
        defaults["grad_clip"] is None
        and defaults["lr"] == 0.1
        and set(defaults) == set(DEFAULT_CONFIG["train"]) | {"grad_clip"}
    )
    with pytest.raises(ConfigError, match=r"^train: Additional properties are not allowed \('grad_clipp' was"):
        train_defaults(schema, grad_clipp=1.0)
