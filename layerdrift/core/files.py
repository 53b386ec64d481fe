"""Writing into a run folder safely: atomic files and folders, one writer per folder, storage
errors in one sentence, and the fault points the kill -9 tests stop at.

Every write of a run goes through ``atomic_path`` (a unique temp name beside the target, renamed
over it in one step, removed on any failure) inside ``storage_errors`` (a full disk, a quota, a
read-only or forbidden folder becomes one sentence with the free space). ``RunLock`` keeps a
second process out of a run folder while one writes it. A run folder on object storage takes the same
calls; ``objectstore`` holds what differs there (publish by key, a lease for the lock).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from layerdrift.core.objectstore import (
    RemoteLease,
    RunPath,
    is_remote,
    publish,
    remote_error_sentence,
    remove_remote,
    run_location,
)
from layerdrift.errors import LayerdriftError

FAULT_AT_ENV = (
    "LAYERDRIFT_FAULT_AT"  # tests: SIGKILL this process at the N-th fault point, or at the one with this label
)
FAULT_LOG_ENV = "LAYERDRIFT_FAULT_LOG"  # tests: append "N<TAB>label" of every fault point to this file
FAULT_ONCE_ENV = "LAYERDRIFT_FAULT_ONCE"  # tests: kill only while this file exists, and delete it (a retry lives)
_faults_seen = 0

STORAGE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission is denied",
    errno.EPERM: "permission is denied",
    errno.EFBIG: "the file is larger than this file system or process allows",
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fault_point(label: str) -> None:
    """A place where a kill -9 must leave the run recoverable; the fault-injection tests stop here."""
    global _faults_seen
    at, log = os.environ.get(FAULT_AT_ENV), os.environ.get(FAULT_LOG_ENV)
    if not at and not log:
        return
    _faults_seen += 1
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_faults_seen}\t{label}\n")
    if at and (_faults_seen == int(at) if at.isdigit() else label == at):
        once = os.environ.get(FAULT_ONCE_ENV)
        if once:
            try:
                os.remove(once)
            except FileNotFoundError:
                return
        os.kill(os.getpid(), signal.SIGKILL)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def storage_error_sentence(err: OSError, where: Path) -> str:
    """One sentence for a failed write: what, where, why, how much space is free, what to do."""
    try:
        free = f"{_human(shutil.disk_usage(_existing_ancestor(where)).free)} free there"
    except OSError:
        free = "free space unknown"
    target = err.filename or where
    return (
        f"could not write {str(target)!r}: {STORAGE_REASONS[err.errno]} ({free}); free some space or choose another "
        "--out folder, then run again (finished work is kept and reused)."
    )


@contextmanager
def storage_errors(where: RunPath, doing: str = "write") -> Iterator[None]:
    """Turn a storage failure under ``where`` into a LayerdriftError: full disk, quota, read-only, permission; on
    object storage also a missing bucket, denied access or an unreachable endpoint."""
    try:
        yield
    except LayerdriftError:
        raise
    except Exception as err:  # a remote client's own errors (botocore's, aiohttp's) are not all OSErrors
        if is_remote(where):
            sentence = remote_error_sentence(err, where, doing)
            if sentence is None:
                raise
            raise LayerdriftError(sentence) from None
        if not isinstance(err, OSError) or err.errno not in STORAGE_REASONS:
            raise
        raise LayerdriftError(storage_error_sentence(err, where)) from None


def remove_path(path: RunPath) -> None:
    """Delete a file or a folder tree if it exists."""
    if is_remote(path):
        remove_remote(path)
    elif path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temp_sibling(path: Path) -> Path:
    """A temp name beside ``path``, unique per process and call (two writers never share one)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_path(path: RunPath) -> Iterator[Path]:
    """Yield a temp path to write (a file or a folder); on success it replaces ``path`` in one rename,
    on any failure (or storage error, said in one sentence) it is removed and ``path`` is untouched.

    On object storage the temp path is local and is published by key when it is done (see ``objectstore``).
    """
    if is_remote(path):
        with tempfile.TemporaryDirectory(prefix="layerdrift-") as folder:
            tmp = Path(folder) / path.name
            yield tmp
            fault_point(f"before rename {path}")
            with storage_errors(path):
                publish(tmp, path)
        fault_point(f"after rename {path}")
        return
    tmp = temp_sibling(path)
    try:
        with storage_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            fault_point(f"before rename {path}")
            if tmp.is_dir() and path.is_dir():  # a folder: move the old one aside, then swap
                old = temp_sibling(path)
                os.replace(path, old)
                os.replace(tmp, path)
                remove_path(old)
            else:
                os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    fault_point(f"after rename {path}")


def remove_temp_files(folder: RunPath) -> None:
    """Delete the temp files and folders (``.NAME.tmp-PID-ID``) that writers killed mid-write left in a folder tree
    (remote writers keep their temp files on their own machine, so a remote folder never has any)."""
    if is_remote(folder):
        return
    for path in sorted(folder.rglob(".*.tmp-*"), key=lambda p: len(p.parts)):
        remove_path(path)


def write_json_atomic(path: RunPath, obj: Any) -> None:
    """Write JSON through a temp file renamed over ``path`` (never a half-written file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str), encoding="utf-8")


def write_npz_atomic(path: RunPath, arrays: dict[str, Any]) -> None:
    """Write named arrays as one .npz through a temp file renamed over ``path``."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


class RunLock:
    """An exclusive lock on a run folder, naming its holder (pid, host, start). Re-entrant within one process.

    Local folders: ``RUN/.lock`` held with flock; the kernel drops it when the holder dies (even by kill -9), so
    a lock left behind by a dead process is stale by construction and simply taken over. Remote folders: a lease
    object renewed while held (``objectstore.RemoteLease``).
    """

    NAME = ".lock"
    _held: dict[str, tuple[Any, int]] = {}  # folder -> (fd or lease, depth)

    def __init__(self, folder: str | RunPath):
        folder = run_location(folder)
        self.folder = folder if is_remote(folder) else folder.absolute()
        self.created_folder = False

    def __enter__(self) -> "RunLock":
        key = str(self.folder)
        if key in self._held:
            held, depth = self._held[key]
            self._held[key] = (held, depth + 1)
            return self
        if is_remote(self.folder):
            lease = RemoteLease(self.folder)
            with storage_errors(self.folder):
                lease.acquire(now())
            self._held[key] = (lease, 1)
            return self
        self._held[key] = (self._flock(), 1)
        remove_temp_files(self.folder)  # the lock is ours: any temp file here is a dead writer's
        return self

    def _flock(self) -> int:
        import fcntl

        with storage_errors(self.folder):
            self.created_folder = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise LayerdriftError(
                f"run folder {str(self.folder)!r} is in use by another layerdrift process ({holder}); "
                "wait for it to finish, or choose another --out folder."
            ) from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        return fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            return f"pid {info['pid']} on host {info['host']}, since {info['started']}"
        except (OSError, ValueError, KeyError):
            return "holder unknown"

    def __exit__(self, *exc: object) -> None:
        key = str(self.folder)
        held, depth = self._held[key]
        if depth > 1:
            self._held[key] = (held, depth - 1)
            return
        del self._held[key]
        if isinstance(held, RemoteLease):
            held.release()  # an empty remote folder is no folder: nothing is left behind
            return
        os.close(held)  # releases the flock
        if self.created_folder and [p.name for p in self.folder.iterdir()] == [self.NAME]:
            remove_path(self.folder)  # nothing was written: leave nothing behind


def read_json(path: RunPath, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayerdriftError(
            f"{what} {str(path)!r} is missing; run `layerdrift run` for this run folder again."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LayerdriftError(
            f"{what} {str(path)!r} is corrupt (not valid JSON); run `layerdrift run` for this "
            "run folder again to rebuild it."
        ) from None


def read_json_or_none(path: RunPath) -> Any | None:
    """A JSON file's content, or None when it is missing or does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_cached_json(path: RunPath, fingerprint: str) -> Any | None:
    """A cached JSON object if it exists, parses and carries this fingerprint; otherwise None (recompute)."""
    data = read_json_or_none(path)
    return data if isinstance(data, dict) and data.get("fingerprint") == fingerprint else None


def _cached_bytes(path: RunPath, parse: Any) -> Any | None:
    """``parse(bytes)`` of a cache file, or None when it is missing or damaged (a damaged one is deleted)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return parse(io.BytesIO(data))
    except Exception:  # any decoding failure: the cache is recomputed
        remove_path(path)
        return None


def read_cached_npz(path: RunPath) -> dict[str, Any] | None:
    """The named arrays of a cached .npz file, or None (missing or damaged: recompute)."""
    import numpy as np

    def parse(buf: io.BytesIO) -> dict[str, Any]:
        with np.load(buf, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    return _cached_bytes(path, parse)


def read_cached_parquet(path: RunPath) -> Any | None:
    """A cached Parquet table, or None (missing or damaged: recompute)."""
    import pandas as pd

    return _cached_bytes(path, pd.read_parquet)
