"""Small datasets in the real on-disk formats, and a real HTTP server on 127.0.0.1 to serve them."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import yaml

from mlpipe.formats.idx import write_idx

CIFAR_FILE = "cifar-10-python.tar.gz"
SPLIT_SETTINGS = {"val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cifar_archive(per_batch: int = 20, test: int = 20, fine: bool = False, seed: int = 0) -> bytes:
    """A CIFAR-10 (or, with ``fine``, CIFAR-100) "python version" tar.gz, as the official one is laid out."""
    rng = np.random.default_rng(seed)
    classes = 100 if fine else 10
    folder, label_key = ("cifar-100-python", b"fine_labels") if fine else ("cifar-10-batches-py", b"labels")
    batches = {"test_batch" if not fine else "test": test}
    if fine:
        batches["train"] = per_batch * 5
    else:
        batches.update({f"data_batch_{index}": per_batch for index in range(1, 6)})
    members = {}
    for name, count in batches.items():
        labels = (np.arange(count) % classes).tolist()
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        # Brighter images for higher labels: enough signal for a short training run to learn something.
        data = np.clip(data // 4 + np.array(labels)[:, None] * (180 // classes), 0, 255).astype(np.uint8)
        members[f"{folder}/{name}"] = pickle.dumps({b"batch_label": name.encode(), label_key: labels, b"data": data})
    meta_name, meta_key = ("meta", b"fine_label_names") if fine else ("batches.meta", b"label_names")
    members[f"{folder}/{meta_name}"] = pickle.dumps(
        {meta_key: [f"class{index:02d}".encode() for index in range(classes)]}
    )
    return tar_gz(members)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def idx_gz(array: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "array.idx"
    write_idx(path, array)
    return gzip.compress(path.read_bytes())


def mnist_files(tmp_path, train: int = 60, test: int = 20) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    files = {}
    for prefix, count in (("train", train), ("t10k", test)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = idx_gz(
            rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), tmp_path
        )
        files[f"{prefix}-labels-idx1-ubyte.gz"] = idx_gz((np.arange(count) % 10).astype(np.uint8), tmp_path)
    return files


class DatasetServer:
    """Serves ``files`` over HTTP with Range support; failures can be injected per file."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.fail_next: dict[str, int] = {}  # file -> how many requests get a 503 first
        self.cut_next: dict[str, int] = {}  # file -> the next response stops after this many bytes
        self.requests: list[tuple[str, str | None]] = []  # (file, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                if server.fail_next.get(name, 0) > 0:
                    server.fail_next[name] -= 1
                    self.send_error(503, "try again later")
                    return
                data, start = server.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut_next:
                    body = body[: server.cut_next.pop(name)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> DatasetServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_catalog(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump(entries))
    return path


def cifar_catalog(tmp_path: Path, archive: bytes) -> Path:
    """The built-in CIFAR-10 entry with the checksum of the archive the test made."""
    return write_catalog(
        tmp_path / "catalog.yaml", {"cifar10": {"files": [{"filename": CIFAR_FILE, "md5": md5(archive)}]}}
    )


def make_image_folder(root: Path, corrupt: bool = False) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["dogs", "cats", "birds"]):  # classes come out sorted: birds, cats, dogs
        (root / name).mkdir(parents=True)
        for index in range(10):
            size = (20 + index, 30 - index)
            if index % 2:
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / name / f"{index}.jpg")
            else:
                Image.fromarray(np.full(size, 40 * label, dtype=np.uint8), mode="L").save(root / name / f"{index}.png")
    if corrupt:
        (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def image_folder_settings(root: Path, **overrides) -> dict:
    return {
        "name": "image_folder",
        **SPLIT_SETTINGS,
        "image_folder": {
            "root": str(root),
            "size": [16, 12],
            "channels": 3,
            "skip_corrupt": False,
            "split_folders": False,
        }
        | overrides,
    }
