"""Safe extraction of tar archives: every member lands inside the target folder, or nothing does.

Python's tarfile ``data`` filter is the reference: it refuses ``..`` that climbs out, symbolic and
hard links that point outside or to absolute paths, and device files; absolute member paths, which
it would quietly make relative, are refused here too. The archive is extracted into
a temporary folder beside the target and renamed into place only when every member passed.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder, or is a device file."""


class CorruptArchiveError(ValueError):
    """An archive is truncated or not an archive at all."""


def extract_tar(archive: Path, destination: Path) -> Path:
    """Extract ``archive`` into ``destination`` (replacing it), refusing unsafe members by name."""
    staging = destination.with_name(f".{destination.name}.extracting-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if os.path.isabs(member.name):  # the data filter would strip the "/" and extract it; refuse instead
                    raise UnsafeArchiveError(f"{archive.name}: refusing member {member.name!r}: absolute path")
                try:
                    tar.extract(member, staging, filter="data")
                except tarfile.FilterError as error:
                    raise UnsafeArchiveError(f"{archive.name}: refusing member {member.name!r}: {error}") from None
        shutil.rmtree(destination, ignore_errors=True)
        staging.rename(destination)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as error:
        raise CorruptArchiveError(
            f"{archive.name}: truncated or corrupt archive ({error or type(error).__name__})"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
