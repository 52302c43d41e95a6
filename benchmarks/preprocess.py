"""Preprocess time and peak memory for a CIFAR-10-sized dataset (60,000 32x32 RGB images), two ways.

1. A CIFAR-10 archive: writes one in CIFAR-10's real format (five pickled training batches of 10,000 images
   and a test batch, tar.gz), puts it in place the way the download stage does (verified, extracted).
   Target (issue 4): <= 10 s on 2 cores, peak memory <= 2x the dataset's uint8 size.
2. A lab's own torch Dataset class (dataset.name: custom), written as the lab guide writes one, holding the
   images like torchvision's CIFAR10 and returning (PIL image, label), or (uint8 tensor, label) with --samples
   tensor; read with 2 worker processes, as the preprocess rule does. Target (issue 10): <= 15 s on 2 cores.

Each runs the preprocess stage in a fresh process and reports its wall time (Python start-up and, for the
Dataset, importing torch and building the Dataset included) and peak resident memory (the kernel's high-water
mark, including the memory-mapped output pages).
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
from workflow_copy import measured_on

CIFAR_FILE = "cifar-10-python.tar.gz"
PER_BATCH = 10_000
SPLIT = {"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 0}
DATASET_MB = 6 * PER_BATCH * 3072 / 2**20
# The child reports its own high-water mark (VmHWM): a forked child's ru_maxrss would also count the
# pages it shared with this (large) parent before exec.
CHILD = (
    "import sys, json; from pathlib import Path; from mlpipe.preprocess.stage import preprocess_dataset; "
    "preprocess_dataset(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), threads=int(sys.argv[4])); "
    "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"
)
DATASET_CLASS = """
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


class CustomDataset(Dataset):
    classes = [f"class{index}" for index in range(10)]

    def __init__(self, split="train", samples="pil", transform=None):
        count = 50_000 if split == "train" else 10_000
        rng = np.random.default_rng(0 if split == "train" else 1)
        self.data = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)  # as torchvision's CIFAR10 holds it
        self.targets = (np.arange(count) % 10).tolist()
        self.samples = samples
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, idx):
        if self.samples == "pil":
            sample = Image.fromarray(self.data[idx])
        else:
            sample = torch.from_numpy(self.data[idx]).permute(2, 0, 1)
        if self.transform:
            sample = self.transform(sample)
        return sample, self.targets[idx]
"""


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


def preprocess_in_child(raw: Path, processed: Path, settings: dict, threads: int, cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MB of the preprocess stage in a fresh process."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(raw), str(processed), json.dumps(settings), str(threads)],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return time.perf_counter() - started, int(child.stdout.split()[-1]) / 1024


def cifar_archive(root: Path) -> None:
    from mlpipe.download.stage import download_dataset

    (root / "lab").mkdir()
    write_cifar_archive(root / "lab" / CIFAR_FILE)
    digest = hashlib.md5((root / "lab" / CIFAR_FILE).read_bytes()).hexdigest()
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"cifar10": {"files": [{"filename": CIFAR_FILE, "md5": digest}]}}))
    started = time.perf_counter()
    download_dataset({"name": "cifar10", "local_dir": str(root / "lab"), "catalog": str(catalog)}, root / "raw")
    extract_seconds = time.perf_counter() - started
    seconds, peak_mb = preprocess_in_child(root / "raw", root / "processed", SPLIT, 1, root)
    counts = yaml.safe_load((root / "processed" / "meta.json").read_text())["counts"]

    print(f"CIFAR-10 archive: 60,000 x 3x32x32 uint8 = {DATASET_MB:.0f} MB ({counts})")
    print(f"  verify + extract         {extract_seconds:.1f} s")
    print(f"  preprocess (new process) {seconds:.1f} s   (target <= 10 s on 2 cores)")
    print(f"  preprocess peak RSS      {peak_mb:.0f} MB = {peak_mb / DATASET_MB:.2f}x the uint8 size   (target <= 2x)")


def user_dataset(root: Path, samples: str) -> None:
    from mlpipe.download.stage import download_dataset

    (root / "src" / "data").mkdir(parents=True)
    (root / "src" / "data" / "dataset.py").write_text(DATASET_CLASS)
    download_dataset({"name": "custom"}, root / "raw")
    custom = {"class": "src/data/dataset.py:CustomDataset", "args": {"samples": samples}}
    seconds, peak_mb = preprocess_in_child(root / "raw", root / "processed", SPLIT | {"custom": custom}, 2, root)
    meta = yaml.safe_load((root / "processed" / "meta.json").read_text())

    print(f"Dataset class returning {samples} samples: 60,000 x {meta['shape']} {meta['dtype']} ({meta['counts']})")
    print(f"  preprocess (new process, 2 workers) {seconds:.1f} s   (target <= 15 s on 2 cores)")
    print(f"  preprocess peak RSS      {peak_mb:.0f} MB = {peak_mb / DATASET_MB:.2f}x the uint8 size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", choices=["pil", "tensor"], default="pil", help="what the Dataset class returns")
    args = parser.parse_args()
    print(measured_on())
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        cifar_archive(Path(scratch))
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as scratch:
        user_dataset(Path(scratch), args.samples)


if __name__ == "__main__":
    main()
