"""Download, offline: archives in the true formats served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from conftest import REPO, SMALL_CONFIG_OVERRIDES, copy_workflow, edit_config, snakemake
from dataset_files import (
    CIFAR_FILE,
    DatasetServer,
    cifar_archive,
    cifar_catalog,
    image_folder_settings,
    make_image_folder,
    md5,
    mnist_files,
    tar_gz,
    write_catalog,
)
from mlpipe.download import transfer
from mlpipe.download.archives import CorruptArchiveError, UnsafeArchiveError, extract_tar
from mlpipe.download.builtin import export_digits
from mlpipe.download.catalog import dataset_spec
from mlpipe.download.image_folder import ImageFolderError
from mlpipe.download.stage import download_dataset
from mlpipe.download.transfer import ChecksumError, DownloadError, fetch
from mlpipe.formats.idx import read_idx
from mlpipe.preprocess.stage import preprocess_dataset

SPLIT = {"val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


def test_the_builtin_digits_are_scikit_learns_as_load_digits_gives_them(tmp_path):
    from sklearn.datasets import load_digits

    manifest = export_digits(tmp_path)
    digits = load_digits()
    images = read_idx(tmp_path / manifest["splits"]["all"]["images"])
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert np.array_equal(images, np.rint(digits.images * 255 / 16).astype(np.uint8))
    assert np.array_equal(read_idx(tmp_path / manifest["splits"]["all"]["labels"]), digits.target)
    assert manifest["classes"] == [str(name) for name in digits.target_names]


def test_builtin_entries_carry_torchvisions_official_locations_and_checksums():
    cifar = dataset_spec("cifar10")
    assert cifar.files[0].urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert cifar.files[0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar.splits["test"] == ["extracted/cifar-10-batches-py/test_batch"]
    mnist = dataset_spec("mnist")
    assert mnist.files[0].filename == "train-images-idx3-ubyte.gz"
    assert all(url.startswith("https://") or url.startswith("http://") for remote in mnist.files for url in remote.urls)
    assert dataset_spec("cifar100").label_key == "fine_labels"
    assert dataset_spec("fashion_mnist").classes[0] == "T-shirt/top"


def test_cifar10_downloads_through_the_mirror_then_preprocesses_and_trains_in_snakemake(tmp_path):
    archive = cifar_archive(per_batch=40, test=40)
    with DatasetServer({CIFAR_FILE: archive}) as server:
        workdir = copy_workflow(tmp_path / "project")
        edit_config(
            workdir,
            SMALL_CONFIG_OVERRIDES
            | {
                "dataset": {"name": "cifar10", "mirror": server.url, "catalog": str(cifar_catalog(tmp_path, archive))},
                "train": {"epochs": 2, "crop_padding": 4, "flip": True, "batch_size": 32},
                "sweep": {"grid": {"lr": [0.05]}, "seeds": [0]},
            },
        )
        snakemake(workdir, "--cores", "2")
        assert [request[0] for request in server.requests] == [CIFAR_FILE]
    meta = json.loads((workdir / "data" / "processed" / "cifar10" / "meta.json").read_text())
    assert meta["shape"] == [3, 32, 32] and meta["classes"][:2] == ["class00", "class01"]
    assert meta["counts"] == {"train": 170, "val": 30, "test": 40}  # val: 15 % of each class's 20
    assert (workdir / "results" / "summary.csv").exists()


def test_mnist_idx_files_download_and_preprocess(tmp_path):
    files = mnist_files(tmp_path)
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "mnist": {"files": [{"filename": name, "md5": md5(data)} for name, data in files.items()]},
        },
    )
    with DatasetServer(files) as server:
        download_dataset({"name": "mnist", "mirror": server.url, "catalog": str(catalog)}, tmp_path / "raw")
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", SPLIT)
    assert meta["shape"] == [1, 28, 28]
    assert meta["counts"] == {"train": 50, "val": 10, "test": 20}  # val: 1 of each class's 6
    assert meta["classes"][0] == "0 - zero"


def test_an_interrupted_transfer_resumes_with_a_range_request(tmp_path):
    data = bytes(range(256)) * 4000
    with DatasetServer({"big.bin": data}) as server:
        server.cut_next["big.bin"] = 300_000
        fetch([server.url + "big.bin"], tmp_path / "big.bin", md5(data), backoff=0.01)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert server.requests == [("big.bin", None), ("big.bin", "bytes=300000-")]


def test_a_file_already_downloaded_and_verified_is_not_fetched_again(tmp_path):
    data = b"dataset" * 1000
    with DatasetServer({"file.bin": data}) as server:
        fetch([server.url + "file.bin"], tmp_path / "file.bin", md5(data), backoff=0.01)
        fetch([server.url + "file.bin"], tmp_path / "file.bin", md5(data), backoff=0.01)
    assert len(server.requests) == 1


def test_a_part_file_left_by_an_earlier_run_is_continued(tmp_path):
    data = b"0123456789" * 50_000
    (tmp_path / "big.bin.part").write_bytes(data[:123_456])
    with DatasetServer({"big.bin": data}) as server:
        fetch([server.url + "big.bin"], tmp_path / "big.bin", md5(data), backoff=0.01)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert server.requests == [("big.bin", "bytes=123456-")]


def test_a_server_that_fails_twice_then_succeeds(tmp_path):
    data = b"payload" * 1000
    with DatasetServer({"file.bin": data}) as server:
        server.fail_next["file.bin"] = 2
        fetch([server.url + "file.bin"], tmp_path / "file.bin", md5(data), backoff=0.01)
    assert (tmp_path / "file.bin").read_bytes() == data and len(server.requests) == 3


def test_a_server_that_keeps_failing_gives_up_with_the_url_named(tmp_path):
    with DatasetServer({"file.bin": b"x"}) as server:
        server.fail_next["file.bin"] = 10
        with pytest.raises(DownloadError, match=r"file.bin: HTTP 503 try again later \(gave up after 2 retries\)"):
            fetch([server.url + "file.bin"], tmp_path / "file.bin", md5(b"x"), retries=2, backoff=0.01)
    assert list(tmp_path.iterdir()) == []


def test_by_default_a_failing_download_is_tried_six_times_with_backoff_as_the_readme_says(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(transfer.time, "sleep", waits.append)
    with DatasetServer({"file.bin": b"x"}) as server:
        server.fail_next["file.bin"] = 10
        with pytest.raises(DownloadError, match=r"\(gave up after 5 retries\)"):
            fetch([server.url + "file.bin"], tmp_path / "file.bin", md5(b"x"))
    assert len(server.requests) == 6 and waits == [1, 2, 4, 8, 16]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "retried up to 5 times (6 attempts in all), waiting 1, 2, 4, 8 and 16 s between them" in readme


def test_a_missing_file_is_not_retried(tmp_path):
    with DatasetServer({}) as server, pytest.raises(DownloadError, match="HTTP 404"):
        fetch([server.url + "nope.bin"], tmp_path / "nope.bin", md5(b""), backoff=0.01)
    assert len(server.requests) == 1


def test_a_checksum_mismatch_names_both_digests_and_leaves_nothing(tmp_path):
    data = b"what the server has"
    expected = md5(b"what was published")
    with DatasetServer({"file.bin": data}) as server, pytest.raises(ChecksumError) as error:
        fetch([server.url + "file.bin"], tmp_path / "file.bin", expected, backoff=0.01)
    assert f"expected md5 {expected}, got {md5(data)}" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_mismatch_stops_the_workflow_with_one_line(tmp_path):
    archive = cifar_archive()
    with DatasetServer({CIFAR_FILE: archive}) as server:
        workdir = copy_workflow(tmp_path / "project")
        catalog = write_catalog(
            tmp_path / "catalog.yaml", {"cifar10": {"files": [{"filename": CIFAR_FILE, "md5": "0" * 32}]}}
        )
        edit_config(
            workdir,
            SMALL_CONFIG_OVERRIDES | {"dataset": {"name": "cifar10", "mirror": server.url, "catalog": str(catalog)}},
        )
        result = snakemake(workdir, "--cores", "1", check=False)
    assert result.returncode != 0
    log = (workdir / "results" / "logs" / "download" / "cifar10.log").read_text()
    assert log.strip().splitlines()[-1] == (
        f"error: ChecksumError: {CIFAR_FILE} from {server.url}{CIFAR_FILE}: checksum mismatch: "
        f"expected md5 {'0' * 32}, got {md5(archive)}; the file was deleted"
    )
    raw = workdir / "data" / "raw" / "cifar10"
    assert not (raw / CIFAR_FILE).exists() and not (raw / f"{CIFAR_FILE}.part").exists()
    assert not (raw / "manifest.json").exists()


def test_a_truncated_archive_is_a_clear_error_and_extracts_nothing(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(cifar_archive()[:5000])
    with pytest.raises(CorruptArchiveError, match="broken.tar.gz: truncated or corrupt archive"):
        extract_tar(archive, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.tar.gz"]


def special_member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (tarfile.TarInfo("../escape.txt"), "outside the destination"),
        (tarfile.TarInfo("/etc/evil.txt"), "absolute path"),
        (special_member("link", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (special_member("link", tarfile.SYMTYPE, "../../outside"), "outside the destination"),
        (special_member("hard", tarfile.LNKTYPE, "../../outside"), "outside the destination"),
        (special_member("device", tarfile.CHRTYPE), "special file"),
    ],
)
def test_unsafe_archive_members_are_refused_by_name(tmp_path, member, reason):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("fine.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError) as error:
        extract_tar(archive, tmp_path / "out")
    assert f"evil.tar.gz: refusing member {member.name!r}" in str(error.value) and reason in str(error.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["evil.tar.gz"]
    assert not (tmp_path.parent / "escape.txt").exists()


def test_unsafe_member_inside_a_downloaded_dataset_stops_the_download(tmp_path):
    archive = tar_gz({"cifar-10-batches-py/../../../etc/cron.d/evil": b"x"})
    catalog = cifar_catalog(tmp_path, archive)
    with DatasetServer({CIFAR_FILE: archive}) as server, pytest.raises(UnsafeArchiveError, match="refusing member"):
        download_dataset({"name": "cifar10", "mirror": server.url, "catalog": str(catalog)}, tmp_path / "raw")
    assert not (tmp_path / "raw" / "manifest.json").exists() and not (tmp_path / "raw" / "extracted").exists()


def test_a_local_copy_is_verified_and_used_without_any_network(tmp_path):
    archive = cifar_archive()
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / CIFAR_FILE).write_bytes(archive)
    # The mirror points at a port nothing listens on: any attempt to download would fail.
    settings = {
        "name": "cifar10",
        "local_dir": str(tmp_path / "lab"),
        "mirror": "http://127.0.0.1:9/",
        "catalog": str(cifar_catalog(tmp_path, archive)),
    }
    download_dataset(settings, tmp_path / "raw")
    assert not (tmp_path / "raw" / CIFAR_FILE).exists()  # extracted from the lab copy, not copied
    meta = preprocess_dataset(tmp_path / "raw", tmp_path / "processed", SPLIT)
    assert meta["counts"]["test"] == 20


def test_a_corrupt_local_copy_is_refused(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / CIFAR_FILE).write_bytes(b"not the archive")
    settings = {
        "name": "cifar10",
        "local_dir": str(tmp_path / "lab"),
        "catalog": str(cifar_catalog(tmp_path, cifar_archive())),
    }
    with pytest.raises(ChecksumError, match=f"lab/{CIFAR_FILE}: checksum mismatch"):
        download_dataset(settings, tmp_path / "raw")


@pytest.mark.parametrize(
    "catalog_text, message",
    [
        (
            "cifar10:\n  files: [{filename: cifar-10-python.tar.gz, md5: c58f30108f718f92721af3b95e74349a}\n",
            "dataset.catalog: {catalog}, line 3, column 1: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence on line 2)",
        ),
        (
            "cifar10:\n  files:\n    - {filename: cifar-10-python.tar.gz, md5: 00000000000000000000000000000000}\n",
            "dataset.catalog {catalog}, entry 'cifar10': files[0].md5 0 is not 32 hexadecimal characters; "
            "put it in quotes (YAML reads an unquoted run of digits as a number)",
        ),
        (
            "cifar10:\n  files:\n    - {filename: cifar-10-python.tar.gz, md5: c58f30108f718f92}\n",
            "dataset.catalog {catalog}, entry 'cifar10': files[0].md5 'c58f30108f718f92' is not 32 hexadecimal "
            "characters",
        ),
    ],
    ids=["unclosed-bracket", "md5-read-as-a-number", "md5-too-short"],
)
def test_a_bad_catalog_stops_snakemake_with_one_line_before_any_download(workflow_copy, catalog_text, message):
    catalog = workflow_copy / "catalog.yaml"
    catalog.write_text(catalog_text)
    edit_config(workflow_copy, {"dataset": {"name": "cifar10", "catalog": str(catalog)}})
    result = snakemake(workflow_copy, "-n", check=False)
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()][-1] == "config error: " + message.format(
        catalog=catalog
    )
    assert "Traceback" not in result.stderr
    assert not (workflow_copy / "data").exists()


@pytest.mark.parametrize("contents", [{}, {"0.gif": b"GIF89a", "notes.txt": b"zebras"}], ids=["empty", "only-gif"])
def test_a_class_folder_without_png_or_jpeg_images_is_refused_naming_it(tmp_path, contents):
    root = make_image_folder(tmp_path / "images")
    (root / "zebras").mkdir()
    for name, data in contents.items():
        (root / "zebras" / name).write_bytes(data)
    with pytest.raises(ImageFolderError) as error:
        download_dataset(image_folder_settings(root), tmp_path / "raw")
    found = f" (it holds {len(contents)} other files, e.g. 0.gif)" if contents else ""
    assert str(error.value) == (
        f"dataset.image_folder.root: class folder {root / 'zebras'} has no PNG or JPEG images{found}; "
        "add some, or remove the folder"
    )
    assert not (tmp_path / "raw" / "manifest.json").exists()
