"""Atomic writes (a failed writer never leaves a half-written file under the final name) and strict YAML reading."""

from __future__ import annotations

import pytest

from conftest import REPO
from mlpipe.io import YamlSyntaxError, atomic_path, read_yaml


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_the_old_file_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


DUPLICATED = "name: first\nentries:\n  a: 1\n  b: 2\n  a: 3\n"
DUPLICATE_MESSAGE = "line 5, column 3: key 'a' is written twice (first on line 3); YAML would keep the later silently"


def test_read_yaml_refuses_a_key_written_twice_and_keeps_merge_keys(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(DUPLICATED)
    with pytest.raises(YamlSyntaxError) as error:
        read_yaml(path)
    assert str(error.value) == f"{path}, {DUPLICATE_MESSAGE}: remove one"
    path.write_text("{a: 1, a: 2}\n")
    with pytest.raises(YamlSyntaxError, match=r"key 'a' is written twice \(first on line 1\)"):
        read_yaml(path)
    path.write_text("base: &base {x: 1, y: 2}\nother:\n  <<: *base\n  x: 3\n")  # a merge key is no duplicate
    assert read_yaml(path) == {"base": {"x": 1, "y": 2}, "other": {"x": 3, "y": 2}}


def test_every_yaml_file_mlpipe_reads_refuses_a_key_written_twice(tmp_path):
    # The config files are read at parse time (tests/test_config.py); the dataset catalogue and the site file too.
    from mlpipe.cluster.site import SiteError, load_site
    from mlpipe.download.catalog import dataset_names

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("mine:\n  format: idx\n  classes: [a, b]\n  format: cifar\n")
    with pytest.raises(ValueError, match=rf"^dataset.catalog: {catalog}, line 4, column 3: key 'format' is written"):
        dataset_names(str(catalog))
    site = tmp_path / "site.yaml"
    site.write_text(REPO.joinpath("profiles", "osc", "site.yaml").read_text() + "name: again\n")
    with pytest.raises(SiteError, match=rf"^site file {site}, line \d+, column 1: key 'name' is written twice"):
        load_site(site, {"OSC_ACCOUNT": "PAS1234"}, "project")
