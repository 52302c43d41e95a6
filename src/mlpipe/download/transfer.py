"""Verified HTTP downloads: streamed to a ``.part`` file, resumed with Range, retried with backoff.

A file gets its final name only after its checksum matched; a mismatch deletes it. So a file
under its final name is always good data, and a ``.part`` file is always an unfinished one that
the next attempt continues.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlpipe.progress import ProgressReport, megabytes

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
USER_AGENT = "mlpipe-download/1"


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL and why."""


class ChecksumError(DownloadError):
    """A downloaded file does not have its published checksum."""


class _Retryable(Exception):
    """A failure worth another try: a dropped connection, a timeout, a 5xx answer."""


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, md5: str) -> None:
    actual = file_md5(path)
    if actual != md5:
        raise ChecksumError(f"{path}: checksum mismatch: expected md5 {md5}, got {actual}")


def fetch(
    urls: list[str], destination: Path, md5: str, *, retries: int = 5, backoff: float = 1.0, timeout: float = 60.0
) -> Path:
    """Make ``destination`` hold the file with checksum ``md5``, downloading from the first URL that works."""
    if destination.exists():
        if file_md5(destination) == md5:
            log.info("%s: already downloaded and verified", destination.name)
            return destination
        log.warning("%s: checksum does not match; downloading it again", destination)
        destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    failures = []
    for url in urls:
        try:
            _download(url, part, retries=retries, backoff=backoff, timeout=timeout)
            break
        except DownloadError as error:
            failures.append(str(error))
    else:
        raise DownloadError(f"could not download {destination.name}: {'; '.join(failures)}")
    actual = file_md5(part)
    if actual != md5:
        part.unlink()
        raise ChecksumError(
            f"{destination.name} from {url}: checksum mismatch: expected md5 {md5}, got {actual}; the file was deleted"
        )
    os.replace(part, destination)
    log.info("%s: downloaded and verified (md5 %s)", destination.name, md5)
    return destination


def _download(url: str, part: Path, *, retries: int, backoff: float, timeout: float) -> None:
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            return
        except _Retryable as error:
            if attempt == retries:
                raise DownloadError(f"{url}: {error} (gave up after {retries} retries)") from None
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.0f s (%d/%d)", url, error, delay, attempt + 1, retries)
            time.sleep(delay)


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Fetch ``url`` into ``part``, continuing from its current size when the server supports Range."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: the part is complete (the checksum will tell)
            return
        if error.code >= 500:
            raise _Retryable(f"HTTP {error.code} {error.reason}") from None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
        raise _Retryable(getattr(error, "reason", error)) from None
    with response:
        if offset and response.status != 206:
            log.info("%s: server ignored the Range request; starting over", url)
            offset = 0
        elif offset:
            log.info("%s: resuming at byte %d", url, offset)
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        progress = ProgressReport(part.name.removesuffix(".part"), total, megabytes, offset)
        try:
            with open(part, "ab" if offset else "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    progress.advance(len(chunk))
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as error:
            raise _Retryable(f"connection lost after {progress.done} bytes ({type(error).__name__})") from None
        finally:
            progress.close()
    if total is not None and part.stat().st_size < total:
        raise _Retryable(f"connection closed after {part.stat().st_size} of {total} bytes")
