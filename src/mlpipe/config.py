"""Load and check the workflow config, and expand its sweep into named runs.

Errors are :class:`ConfigError` with one line that names the offending key, so the
Snakefile can stop before any job starts with a message a user can act on.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from mlpipe.hparams import MODEL_ARGS, MODEL_ARGS_PREFIX, with_hparam
from mlpipe.io import read_yaml
from mlpipe.search.halving import HalvingError, Ladder, configuration_of, ladder
from mlpipe.search.space import SpaceError, bounds, check_distribution, sample, sample_id
from mlpipe.user_code import parse_reference

RUN_ID_VALUE = re.compile(r"^[A-Za-z0-9._+-]+$")
# Strings that are exactly a number, boolean or null. PyYAML (YAML 1.1) reads 1e-3 and 1.0e9 as strings,
# and Snakemake's --config passes nested values as strings ('2'): where the schema wants such a value, they mean it.
INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")
NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
BOOLEAN_TEXT = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
NULL_TEXT = ("null", "Null", "NULL", "~")


class ConfigError(ValueError):
    """An invalid config; the message is one line naming the key."""


SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"  # in the workflow folder
CONFIG_FILE = Path("config") / "config.yaml"  # the workflow's own config file (the Snakefile's configfile)


def load_schema(schema_path: str | Path) -> dict:
    return read_yaml(schema_path)


def replace_overridden_grid(config: dict, overrides: list[Mapping]) -> None:
    """Give ``config`` the sweep grid of the last override that has one, whole.

    Snakemake merges an override file (``--configfile``) or ``--config`` into config/config.yaml key by key, which
    for ``sweep.grid`` would add the override's swept keys to the base file's: an override sweeping
    ``model_args.width`` would still sweep the base ``lr`` values. A grid says what is swept, so the one given
    last replaces the ones before it; ``sweep.seeds``, a list, is replaced whole by Snakemake already.
    """
    grids = [
        override["sweep"]["grid"]
        for override in overrides
        if isinstance(override.get("sweep"), Mapping) and "grid" in override["sweep"]
    ]
    if grids and isinstance(config.get("sweep"), dict):
        config["sweep"]["grid"] = copy.deepcopy(grids[-1])


def load_workflow_config(workflow_dir: Path, configfiles: list[Path]) -> dict:
    """The config ``snakemake --configfile ...`` sees in ``workflow_dir``: config/config.yaml, then each file
    merged on top of it as the workflow merges them (for commands that do not run Snakemake)."""
    from snakemake.utils import update_config

    config = read_yaml(workflow_dir / CONFIG_FILE) or {}
    overrides = [read_yaml(path) or {} for path in configfiles]
    for override in overrides:
        update_config(config, override)
    replace_overridden_grid(config, overrides)
    return config


def validate_config(config: dict, schema: Mapping) -> dict:
    """Read plain-value strings as the schema's types, fill in schema defaults and validate ``config`` in place."""
    coerce_strings(config, schema)
    validator = _validator_with_defaults(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_one_line(error))
    return config


def check_config(config: dict, schema: Mapping) -> dict[str, dict]:
    """Validate ``config``, check every name, and return the runs it defines."""
    validate_config(config, schema)
    _check_dataset(config["dataset"])
    _check_trackers(config["tracking"])
    runs = expand_sweep(config, schema)
    _check_models(config, runs)
    return runs


def check_batch_split(runs: Mapping[str, dict], gpus: int) -> None:
    """With several GPUs (a cluster run's ``train_job.gpus``) each process takes an equal share of every batch."""
    for hparams in runs.values():
        if gpus > 1 and hparams["batch_size"] % gpus:
            raise ConfigError(
                f"train.batch_size: {hparams['batch_size']} does not split evenly over train_job.gpus={gpus}; "
                f"use a multiple of {gpus}"
            )


def train_defaults(schema: Mapping, **overrides: Any) -> dict:
    """Every ``train`` key at its schema default, then ``overrides``, checked: the hyperparameters of one run for
    code that trains outside the workflow (benchmarks/training.py, tests), so that a new ``train`` key reaches it
    from the schema rather than from a copied list."""
    train_schema = schema["properties"]["train"]
    hparams = {key: copy.deepcopy(value["default"]) for key, value in train_schema["properties"].items()}
    hparams.update(overrides)
    _check_value("train", hparams, train_schema)
    return hparams


def expand_sweep(config: Mapping, schema: Mapping) -> dict[str, dict]:
    """Return ``{run_id: hyperparameters}`` for every grid point times every random sample times every seed.

    A run id names only the swept values (``lr-0.1_seed-0``) and the sample (``sample-07``), in config order, so it
    is readable and stays the same when an unrelated key changes.
    """
    train_schema = schema["properties"]["train"]
    grid: Mapping[str, list] = config["sweep"]["grid"]
    for key, values in grid.items():
        value_schema = _sweep_key_schema(f"sweep.grid.{key}", key, train_schema)
        coerce_strings(values, {"items": value_schema})
        for index, value in enumerate(values):
            _check_value(f"sweep.grid.{key}[{index}]", value, value_schema)
            _id_value(f"sweep.grid.{key}[{index}]", _id_form(key, value))
    samples = _random_samples(config["sweep"]["random"], grid, train_schema)

    runs: dict[str, dict] = {}
    for combination in itertools.product(*grid.values()):
        for sample_name, sampled in samples:
            for seed in config["sweep"]["seeds"]:
                hparams = {**config["train"], "seed": seed}
                for key, value in [*zip(grid, combination), *sampled.items()]:
                    hparams = with_hparam(hparams, key, value)
                parts = [f"{key}-{_id_value(key, _id_form(key, value))}" for key, value in zip(grid, combination)]
                run_id = "_".join([*parts, *([sample_name] if sample_name else []), f"seed-{seed}"])
                if run_id in runs:
                    raise ConfigError(
                        f"sweep.grid: two grid points give the same run id {run_id!r}; remove the duplicate value"
                    )
                runs[run_id] = hparams
    study_ladder(config, runs)  # settings that cannot work stop here
    return runs


def swept_keys(config: Mapping) -> list[str]:
    """The keys whose values tell a study's configurations apart: the grid's, then the random space's."""
    random = config["sweep"]["random"]
    return [*config["sweep"]["grid"], *(random["space"] if random else {})]


def _sweep_key_schema(where: str, key: str, train_schema: Mapping) -> Mapping:
    """The schema of a swept key's values: a key of ``train``, or ``model_args.<name>``."""
    if key == MODEL_ARGS:
        raise ConfigError(f"{where}: sweep one argument at a time, e.g. sweep.grid.{MODEL_ARGS_PREFIX}width: [32, 64]")
    if key.startswith(MODEL_ARGS_PREFIX):
        if not key.removeprefix(MODEL_ARGS_PREFIX).isidentifier():
            raise ConfigError(f"{where}: {MODEL_ARGS_PREFIX}<name> needs a Python identifier as name")
        return train_schema["properties"][MODEL_ARGS]["additionalProperties"]
    if key not in train_schema["properties"]:
        keys = [f"{MODEL_ARGS_PREFIX}<name>" if name == MODEL_ARGS else name for name in train_schema["properties"]]
        raise ConfigError(f"{where}: unknown hyperparameter; allowed: {', '.join(keys)}")
    return train_schema["properties"][key]


def _random_samples(random: Mapping | None, grid: Mapping, train_schema: Mapping) -> list[tuple[str, dict]]:
    """``[(sample id, values)]`` of ``sweep.random``, each value checked as the key's schema wants; ``[("", {})]``
    without one."""
    if not random:
        return [("", {})]
    for key, distribution in random["space"].items():
        where = f"sweep.random.space.{key}"
        value_schema = _sweep_key_schema(where, key, train_schema)
        if key in grid:
            raise ConfigError(f"{where}: also swept in sweep.grid; sweep a key one way")
        try:
            check_distribution(key, distribution)
        except SpaceError as error:
            raise ConfigError(str(error)) from None
        for value in bounds(distribution):
            _check_value(where, coerce_strings(value, value_schema), value_schema)
    return [(sample_id(index), sample(random["space"], random["seed"], index)) for index in range(random["n"])]


def study_ladder(config: Mapping, runs: Mapping[str, dict]) -> Ladder | None:
    """The rungs of ``sweep.halving`` over ``runs``, checked; None when every run trains the full budget (no halving,
    or ``min_epochs`` equal to ``train.epochs``: a single rung)."""
    halving = config["sweep"]["halving"]
    if not halving:
        return None
    if "epochs" in swept_keys(config):
        raise ConfigError("sweep.halving: train.epochs is the budget its rungs climb to; do not sweep epochs")
    configurations = len({configuration_of(run_id) for run_id in runs})
    try:
        found = ladder(configurations, halving["eta"], halving["min_epochs"], config["train"]["epochs"])
    except HalvingError as error:
        raise ConfigError(str(error)) from None
    return found if len(found.rungs) > 1 else None


def coerce_strings(value: Any, schema: Mapping) -> Any:
    """Return ``value`` with each string that is exactly a number, boolean or null read as one where ``schema``
    wants that type (dicts and lists are changed in place); every other value is left for validation to judge."""
    if isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            item_schema = properties.get(key, extra)
            if isinstance(item_schema, Mapping):
                value[key] = coerce_strings(item, item_schema)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value[:] = [coerce_strings(item, schema["items"]) for item in value]
    elif isinstance(value, str):
        scalar = _plain_scalar(value)
        if scalar is not value and _schema_takes(schema, scalar):
            return scalar
    return value


def download_settings(dataset: Mapping) -> dict:
    """What the download job needs: the source, not the split (so a new split does not fetch again)."""
    folder = dataset["image_folder"]
    return {key: dataset[key] for key in ("name", "mirror", "local_dir", "catalog")} | {
        "image_folder": {"root": folder["root"], "split_folders": folder["split_folders"]}
    }


def preprocess_settings(dataset: Mapping) -> dict:
    """What the preprocess job needs: the split and image decoding, not the source; for dataset custom
    also the Dataset class and its arguments (preprocess is where the class runs)."""
    folder = dataset["image_folder"]
    custom = {"custom": dataset["custom"]} if dataset["name"] == "custom" else {}
    return (
        {key: dataset[key] for key in ("val_fraction", "test_fraction", "split_seed")}
        | {"image_folder": {key: folder[key] for key in ("size", "channels", "skip_corrupt")}}
        | custom
        | ({"subset": dataset["subset"]} if dataset["subset"] else {})
    )


def study_settings(config: Mapping) -> dict:
    """What a study's best_config.yaml carries besides the hyperparameters, to reproduce it on top of any
    config/config.yaml: its folders (as configured, before a site moves them to scratch) and its dataset."""
    return {key: config[key] for key in ("results_dir", "data_root", "checkpoint_root", "dataset")}


def stage_to_tmpdir(train_job: Mapping, on_cluster: bool) -> bool:
    """Whether training jobs read the data from a copy in their $TMPDIR (``auto``: on a cluster)."""
    setting = train_job["stage_to_tmpdir"]
    return setting is True or (setting == "auto" and on_cluster)


def archive_file(archive: Mapping, project: str) -> Path:
    """Where ``snakemake archive`` writes: <destination>/<name, by default the project folder's>.tar.gz."""
    return Path(archive["destination"]) / f"{archive['name'] or project}.tar.gz"


def tracking_settings(tracking: Mapping, results_dir: Path, project: str) -> dict:
    """The tracking section with its defaults resolved: MLflow's file store in <results_dir>/mlruns, the
    project folder's name as MLflow experiment and W&B project."""
    mlflow, wandb = tracking["mlflow"], tracking["wandb"]
    return {
        "tensorboard": tracking["tensorboard"],
        "mlflow": mlflow
        | {
            "tracking_uri": mlflow["tracking_uri"] or (results_dir / "mlruns").resolve().as_uri(),
            "experiment": mlflow["experiment"] or project,
        },
        "wandb": wandb | {"project": wandb["project"] or project},
    }


def _check_models(config: Mapping, runs: Mapping[str, dict]) -> None:
    """Each model of the sweep is known (a lab's own: its file parses and defines the class), and each
    ``model_args`` fits its constructor; every distinct pair is checked once."""
    from mlpipe.models.factory import check_model_args, check_model_name

    grid = config["sweep"]["grid"]
    model_key = "sweep.grid.model" if "model" in grid else "train.model"
    checked: set[str] = set()
    for hparams in runs.values():
        pair = repr((hparams["model"], sorted(hparams[MODEL_ARGS].items(), key=lambda item: item[0])))  # hashable
        if pair in checked:
            continue
        checked.add(pair)
        try:
            check_model_name(hparams["model"])
        except ValueError as error:
            raise ConfigError(f"{model_key}: {error}") from None
        try:
            check_model_args(hparams["model"], hparams[MODEL_ARGS])
        except ValueError as error:
            argument = getattr(error, "argument", None)
            swept = f"{MODEL_ARGS_PREFIX}{argument}"
            raise ConfigError(f"{'sweep.grid.' + swept if swept in grid else 'train.model_args'}: {error}") from None


def _check_dataset(dataset: Mapping) -> None:
    from mlpipe.download.catalog import dataset_names

    try:
        names = dataset_names(dataset["catalog"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if dataset["name"] not in names:
        raise ConfigError(f"dataset.name: unknown dataset {dataset['name']!r}; allowed: {', '.join(names)}")
    if dataset["name"] == "image_folder":
        root = dataset["image_folder"]["root"]
        if not root:
            raise ConfigError(
                "dataset.image_folder.root: required for dataset image_folder (a folder of class folders)"
            )
        if not Path(root).expanduser().is_dir():
            raise ConfigError(f"dataset.image_folder.root: no such folder {root}")
    if dataset["name"] == "custom":
        _check_custom_dataset(dataset["custom"])
    if dataset["local_dir"] and not Path(dataset["local_dir"]).expanduser().is_dir():
        raise ConfigError(f"dataset.local_dir: no such folder {dataset['local_dir']}")


def _check_custom_dataset(custom: Mapping) -> None:
    """The Dataset class exists and its constructor takes ``dataset.custom.args`` (as far as its source says)."""
    from mlpipe.preprocess.user_dataset import SPLIT_ARGUMENTS
    from mlpipe.user_code import FORMS, UserCodeError, check_arguments, check_reference

    if not custom["class"]:
        raise ConfigError(f"dataset.custom.class: required for dataset custom: your torch Dataset class, as {FORMS}")
    reference = parse_reference(custom["class"])
    if reference is None:
        raise ConfigError(f"dataset.custom.class: {custom['class']!r} is not a class reference; write {FORMS}")
    for name in SPLIT_ARGUMENTS:
        if name in custom["args"]:
            raise ConfigError(
                f"dataset.custom.args.{name}: mlpipe passes it itself (to read the train and test splits); remove it"
            )
    try:
        parameters = check_reference(reference)
    except UserCodeError as error:
        raise ConfigError(f"dataset.custom.class: {error}") from None
    split = [name for name in SPLIT_ARGUMENTS if parameters is not None and name in parameters.names][:1]
    try:
        check_arguments(reference, parameters, [*custom["args"], *split], "dataset.custom.args")
    except UserCodeError as error:
        raise ConfigError(f"dataset.custom.args: {error}") from None


def _check_trackers(tracking: Mapping) -> None:
    import importlib.util

    for name, package, install in (("mlflow", "mlflow", "mlflow-skinny"), ("wandb", "wandb", "wandb")):
        if tracking[name]["enabled"] and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"tracking.{name}.enabled: the {package} package is not installed "
                f"(pip install {install}, or pip install -e '.[trackers]')"
            )


def _check_value(key: str, value: Any, schema: Mapping) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        raise ConfigError(f"{key}: {error.message}")


def _plain_scalar(text: str) -> Any:
    """The number, boolean or None that ``text`` spells exactly (YAML 1.2's reading), else ``text`` itself."""
    if INTEGER_TEXT.fullmatch(text):
        return int(text)
    if NUMBER_TEXT.fullmatch(text):
        return float(text)
    if text in BOOLEAN_TEXT:
        return BOOLEAN_TEXT[text]
    return None if text in NULL_TEXT else text


def _schema_takes(schema: Mapping, scalar: Any) -> bool:
    """Whether ``schema``'s type or enum (or one of its ``anyOf``) takes ``scalar`` (type-exact: True is not 1)."""
    if "anyOf" in schema:
        return any(_schema_takes(option, scalar) for option in schema["anyOf"])
    if "enum" in schema:
        return any(type(option) is type(scalar) and option == scalar for option in schema["enum"])
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    if isinstance(scalar, bool):
        return "boolean" in types
    if scalar is None:
        return "null" in types
    return ("number" in types) or ("integer" in types and isinstance(scalar, int))


def _id_value(key: str, value: Any) -> str:
    text = (
        str(value).lower()
        if isinstance(value, bool)
        else format(value, "g")
        if isinstance(value, float)
        else str(value)
    )
    if not RUN_ID_VALUE.match(text):
        raise ConfigError(
            f"{key}: value {value!r} cannot be part of a run id; use letters, digits, '.', '_', '+' or '-'"
        )
    return text


def _id_form(key: str, value: Any) -> Any:
    """What a run id shows of a swept value: a lab's model class by its class name (``model-MyModel``)."""
    reference = parse_reference(value) if key == "model" and isinstance(value, str) else None
    return reference.class_name if reference else value


def _one_line(error: jsonschema.exceptions.ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "config"
    if error.validator == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        unknown = ", ".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
        return f"{key}: unknown key(s) {unknown}; allowed: {allowed}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator == "anyOf":
        allowed = " or ".join(_allowed(option) for option in error.validator_value)
        return f"{key}: {error.instance!r} is not allowed; allowed: {allowed}"
    return f"{key}: {error.message}"


def _allowed(schema: Mapping) -> str:
    """What one option of an ``anyOf`` takes, in words: ``auto``, ``a whole number of at least 1``."""
    if "enum" in schema:
        return ", ".join(map(str, schema["enum"]))
    kinds = {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false"}
    text = kinds.get(schema.get("type"), str(schema.get("type")))
    return f"{text} of at least {schema['minimum']}" if "minimum" in schema else text


def _validator_with_defaults(schema: Mapping) -> jsonschema.protocols.Validator:
    """A validator that also writes each missing property's schema default into the config."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)
