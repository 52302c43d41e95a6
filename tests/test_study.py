"""Study housekeeping: the archive of a finished study, and freeing the checkpoints of finished runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile

from conftest import STUDY_RUN_IDS as RUN_IDS
from conftest import snakemake


def test_archive_packs_the_study_with_a_verifiable_manifest(finished_copy, tmp_path):
    snakemake(finished_copy, "--report", "results/report.html")
    destination = tmp_path / "project-storage"
    snakemake(
        finished_copy, "--cores", "1", "archive", "--config", f"archive={{destination: {destination}, name: study}}"
    )
    archive = destination / "study.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    root = tmp_path / "unpacked" / "study"
    for name in (
        "MANIFEST.sha256",
        "report.html",
        "registry.sqlite",
        "comparison.csv",
        "best_config.yaml",
        "config.resolved.yaml",
        "plots/learning_curves.png",
    ):
        assert f"study/{name}" in names, name
    for run_id in RUN_IDS:
        assert f"study/runs/{run_id}/best.pt" in names and f"study/runs/{run_id}/run_config.json" in names
    assert not [name for name in names if "processed" in name or "resume.pt" in name or name.endswith("last.pt")]
    manifest = (root / "MANIFEST.sha256").read_text().splitlines()
    assert len(manifest) == len(names) - 1  # every file but the manifest itself
    for line in manifest:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=root).returncode == 0


def test_archive_takes_the_project_folders_name_and_checks_from_inside_its_folder(finished_copy, tmp_path):
    destination = tmp_path / "project-storage"
    snakemake(finished_copy, "--cores", "1", "archive", "--config", f"archive={{destination: {destination}}}")
    archive = destination / f"{finished_copy.name}.tar.gz"  # the folder the study lives in (a clone's: its name)
    subprocess.run(["tar", "-xzf", str(archive)], cwd=destination, check=True)
    root = destination / finished_copy.name
    assert sorted(path.name for path in destination.iterdir()) == sorted([archive.name, root.name])
    assert (root / "config.resolved.yaml").is_file() and not (root / "site.json").exists()  # a local study
    check = ["sha256sum", "--quiet", "-c", "MANIFEST.sha256"]
    assert subprocess.run(check, cwd=root, capture_output=True).returncode == 0
    outside = subprocess.run([*check[:-1], f"{root.name}/MANIFEST.sha256"], cwd=destination, capture_output=True)
    assert outside.returncode != 0  # the manifest names files relative to the archive's folder


def test_archive_refuses_while_a_run_is_unfinished(finished_copy, tmp_path):
    info_path = finished_copy / "results" / "runs" / RUN_IDS[2] / "run_info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps(info | {"status": "running"}))
    result = snakemake(
        finished_copy, "--cores", "1", "archive", "--config", f"archive={{destination: {tmp_path}}}", check=False
    )
    assert result.returncode != 0
    log = (finished_copy / "results" / "logs" / "archive" / "archive.log").read_text()
    assert log.strip().splitlines()[-1] == (
        f"error: StudyInProgressError: not archiving: 1 run(s) are not finished: {RUN_IDS[2]} (running)"
    )
    assert not list(tmp_path.glob("*.tar.gz"))


def test_clean_up_frees_finished_runs_checkpoints_and_keeps_unfinished_ones(finished_copy):
    checkpoints = finished_copy / "data" / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == RUN_IDS
    info_path = finished_copy / "results" / "runs" / RUN_IDS[0] / "run_info.json"
    info_path.write_text(json.dumps(json.loads(info_path.read_text()) | {"status": "interrupted"}))
    snakemake(finished_copy, "--cores", "1", "clean_checkpoints")
    assert sorted(path.name for path in checkpoints.iterdir()) == [RUN_IDS[0]]
    assert (checkpoints / RUN_IDS[0] / "resume.pt").exists()
    assert all((finished_copy / "results" / "runs" / run_id / "best.pt").exists() for run_id in RUN_IDS)


def test_clean_up_finds_each_run_s_checkpoints_where_the_run_recorded_them(finished_copy):
    # The runs trained with checkpoint_root data/checkpoints; a later command that names another root
    # (on a cluster: typed without the profile that put checkpoints on scratch) still frees them.
    checkpoints = finished_copy / "data" / "checkpoints"
    snakemake(finished_copy, "--cores", "1", "clean_checkpoints", "--config", "checkpoint_root=elsewhere")
    assert list(checkpoints.iterdir()) == []
