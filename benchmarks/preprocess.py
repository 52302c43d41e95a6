"""Preprocess time and peak memory for a CIFAR-10-sized dataset (60,000 32x32 RGB images).

Writes an archive in CIFAR-10's real format (five pickled training batches of 10,000 images and a
test batch, tar.gz), puts it in place the way the download stage does (verified, extracted), then
runs the preprocess stage in a fresh process and reports its wall time and peak resident memory
(the kernel's high-water mark, including the memory-mapped output pages).
Target (issue 4): <= 10 s on 2 cores, peak memory <= 2x the dataset's uint8 size.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CIFAR_FILE = "cifar-10-python.tar.gz"
PER_BATCH = 10_000


def write_cifar_archive(path: Path) -> None:
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        names = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
        members = {
            name: {
                b"labels": (np.arange(PER_BATCH) % 10).tolist(),
                b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            }
            for name in names
        }
        members["batches.meta"] = {b"label_names": [f"class{index}".encode() for index in range(10)]}
        for name, content in members.items():
            data = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    from mlpipe.download.stage import download_dataset

    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        root = Path(scratch)
        (root / "lab").mkdir()
        write_cifar_archive(root / "lab" / CIFAR_FILE)
        digest = hashlib.md5((root / "lab" / CIFAR_FILE).read_bytes()).hexdigest()
        catalog = root / "catalog.yaml"
        catalog.write_text(yaml.safe_dump({"cifar10": {"files": [{"filename": CIFAR_FILE, "md5": digest}]}}))
        started = time.perf_counter()
        download_dataset({"name": "cifar10", "local_dir": str(root / "lab"), "catalog": str(catalog)}, root / "raw")
        extract_seconds = time.perf_counter() - started

        split = {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0}
        # The child reports its own high-water mark (VmHWM): a forked child's ru_maxrss would also
        # count the pages it shared with this (large) parent before exec.
        code = (
            "import sys, json; from pathlib import Path; from mlpipe.preprocess.stage import preprocess_dataset; "
            "preprocess_dataset(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])); "
            "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"
        )
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", code, str(root / "raw"), str(root / "processed"), json.dumps(split)],
            check=True,
            capture_output=True,
            text=True,
        )
        preprocess_seconds = time.perf_counter() - started
        peak_mb = int(child.stdout.split()[-1]) / 1024
        dataset_mb = 6 * PER_BATCH * 3072 / 2**20
        counts = yaml.safe_load((root / "processed" / "meta.json").read_text())["counts"]

    print(f"dataset                 60,000 x 3x32x32 uint8 = {dataset_mb:.0f} MB ({counts})")
    print(f"verify + extract        {extract_seconds:.1f} s")
    print(f"preprocess (new process) {preprocess_seconds:.1f} s   (target <= 10 s on 2 cores)")
    print(f"preprocess peak RSS     {peak_mb:.0f} MB = {peak_mb / dataset_mb:.2f}x the uint8 size   (target <= 2x)")


if __name__ == "__main__":
    main()
