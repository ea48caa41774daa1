"""Atomic file writes: the one place that writes a temporary file beside the target, syncs it to disk,
renames it into place and syncs the folder, so a crash (of the process or the machine) leaves either the
old file or the new one, never half of either.

``atomic_write(path)`` yields the temporary path for writers that need a file name (``torch.save``,
``np.savez``); ``write_bytes_atomic`` / ``write_text_atomic`` cover the rest. ``folder_bytes`` is what
the disk caches written this way (lwgan.models.feature_store, lwgan.render.cache) already hold.
``is_no_space`` tells a write that failed for want of disk space from other failures, ``free_mib`` how
much room a folder's disk has.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = "database or disk is full"  # SQLite's word for it (MLflow's store)
# How a full disk reads when the OS error is wrapped: SQLite, the OS text.
NO_SPACE_MARKERS = (SQLITE_FULL, "No space left on device", "Disk quota exceeded")


def is_no_space(err: BaseException) -> bool:
    """True when ``err``, or an error it was raised from, says the disk (or the quota) is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS:
            return True
        if any(marker in str(err) for marker in NO_SPACE_MARKERS):
            return True
        err = err.__cause__ or err.__context__
    return False


def free_mib(path: str | os.PathLike) -> float | None:
    """Free space, in MiB, on the disk holding ``path`` (or its nearest existing folder); None if unknown."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free / 2**20
    except OSError:
        return None


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a folder's) data and metadata to disk; folders where the OS allows it."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. a folder on Windows cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is synced and renamed onto ``path``
    and the folder synced. On an exception the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, unlike mkstemp's 0600
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes_atomic(path, text.encode(encoding))


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename a finished folder into place (``os.rename``: fails when ``final`` exists) and sync the parent."""
    os.rename(tmp, final)
    fsync_path(Path(final).parent)


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the files directly in ``folder`` (0 when it does not exist): a disk cache's size so far."""
    folder = Path(folder)
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file()) if folder.is_dir() else 0
