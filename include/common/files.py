"""Replacing files atomically: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".gdpr-tmp-"


@contextmanager
def replacing(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """Write the new content to a temporary file beside `path`; on success it is synced and renamed
    over `path`, on any error (or a kill) the original stays and the temporary is removed (or left
    to `remove_stale_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode if mode is not None else (path.stat().st_mode & 0o777 if path.exists() else 0o640))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    try:
        with replacing(path, mode=mode) as handle:
            handle.write(data)
    except OSError as exc:  # name the file (a full disk reports no path of its own)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc


def remove_stale_temporaries(directory: Path) -> int:
    """Temporaries a killed writer left behind; their originals are intact."""
    removed = 0
    for temp in Path(directory).glob(f"{TEMP_PREFIX}*"):
        temp.unlink(missing_ok=True)
        removed += 1
    return removed


def remove_older_than(directory: Path, cutoff: datetime) -> int:
    """Remove the files under directory last written before cutoff, then the folders left empty;
    returns how many files went. A missing directory has nothing to remove."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.rglob("*"):
        if path.is_file() and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    for folder in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
