"""Run folders on object storage: any fsspec URL (``s3://bucket/runs/x``, ``gs://...``) as well as local paths.

A location is a ``pathlib.Path`` on this machine (also written ``file:///abs/path``) or a ``UPath`` on a remote
file system. The run store uses the same path operations on both; what differs lives here:

- **Publishing a file** is one PUT of a finished local temp file: an object store shows an object whole or not
  at all, so a reader never sees half a manifest (write-then-publish by key). Result sets already publish by
  key: their files first, then the one pointer object that names them.
- **One writer per run** is a lease object ``RUN/.lock``: created only if absent (a conditional PUT), renewed by
  its holder every ``LEASE_SECONDS / 4``, taken over once it has not been renewed for ``LEASE_SECONDS`` (the
  holder died; there is no kernel to drop a lock on a bucket).
- **Errors** (no such bucket, access denied, endpoint unreachable) become one sentence naming the URL.

Credentials and endpoints come from each file system's own settings (for S3: ``AWS_*`` variables such as
``AWS_ENDPOINT_URL``, or ``~/.aws``), on the driver and on every cluster node alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from upath import UPath

from layerdrift.errors import LayerdriftError

RunPath = Path | UPath  # a local folder or a remote one
LEASE_ENV = "LAYERDRIFT_LEASE_SECONDS"  # how long an unrenewed remote lock stays valid (default 60)
LOCAL_PROTOCOLS = ("file", "local")


def run_location(where: str | os.PathLike[str] | UPath) -> RunPath:
    """The run folder at ``where``: a local ``Path`` (plain path or ``file://``) or a ``UPath`` for an fsspec URL."""
    if isinstance(where, UPath) and where.protocol not in ("", *LOCAL_PROTOCOLS):
        return where  # already remote
    if isinstance(where, Path) and not isinstance(where, UPath):
        return where  # already local
    text = str(where)
    protocol, sep, rest = text.partition("://")
    if not sep:
        return Path(text)
    if protocol in LOCAL_PROTOCOLS:
        return Path(rest)
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise LayerdriftError(
            f"{text!r} uses storage protocol {protocol!r}, which fsspec does not know; use a local path or a URL "
            "such as s3://bucket/runs/name or gs://bucket/runs/name."
        ) from None
    except ImportError as err:
        raise LayerdriftError(
            f"{text!r} needs a package that is not installed ({str(err).splitlines()[0]}); install it (for S3: "
            "pip install 'layerdrift[s3]') and run again."
        ) from None
    return UPath(text)


def is_remote(path: RunPath) -> bool:
    return not isinstance(path, Path)


def _fs_key(path: UPath) -> tuple[Any, str]:
    return path.fs, path.path


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def remote_error_sentence(err: BaseException, where: UPath, doing: str = "write") -> str | None:
    """One sentence for a failed object-store access, or None when ``err`` is not a storage failure."""
    url = str(where)
    bucket = f"{where.protocol}://{str(where.path).split('/')[0]}"
    text = str(err).lower()
    if isinstance(err, FileNotFoundError) and ("bucket" in text or "nosuchbucket" in text):
        why = f"the bucket {bucket!r} does not exist; create it or choose another --out location"
    elif isinstance(err, PermissionError):
        why = (
            f"access is denied ({_first_line(err)}); check the credentials this machine uses for {where.protocol}:// "
            "(for S3 the AWS_* variables or ~/.aws) and the bucket's policy"
        )
    elif isinstance(err, ConnectionError | TimeoutError) or "connect" in text or "endpoint" in text:
        why = f"the storage endpoint cannot be reached ({_first_line(err)}); check AWS_ENDPOINT_URL or the network"
    else:
        return None
    then = "run again (finished work is kept and reused)" if doing == "write" else "try again"
    return f"could not {doing} {url!r}: {why}, then {then}."


def make_folder(path: RunPath) -> None:
    """Create a folder (and its parents); object stores have no folders, so there it is nothing to do."""
    if not is_remote(path):
        path.mkdir(parents=True, exist_ok=True)


def remove_remote(path: UPath) -> None:
    """Delete an object or every object under a prefix, if any."""
    fs, key = _fs_key(path)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(key, recursive=True)
    fs.invalidate_cache()


def publish(local: Path, path: UPath) -> None:
    """Upload a finished local file (one PUT: the object appears whole) or folder (its files, old ones removed)."""
    fs, key = _fs_key(path)
    if local.is_dir():
        remove_remote(path)
        files = sorted(p for p in local.rglob("*") if p.is_file())
        fs.put([str(p) for p in files], [f"{key}/{p.relative_to(local).as_posix()}" for p in files])
    else:
        fs.put_file(str(local), key)
    fs.invalidate_cache()


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV, "60"))


class RemoteLease:
    """The lock of a remote run folder: an object created only if absent, renewed while held (see the module)."""

    NAME = ".lock"

    def __init__(self, folder: UPath):
        self.folder = folder
        self.fs, self.key = _fs_key(folder / self.NAME)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _record(self, started: str) -> bytes:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "renewed": time.time()}
        return json.dumps(info).encode()

    def _create(self, started: str) -> bool:
        try:
            self.fs.pipe_file(self.key, self._record(started), mode="create")
        except FileExistsError:
            return False
        except TypeError:  # a file system without conditional writes: the check and the write are two steps
            if self.fs.exists(self.key):
                return False
            self.fs.pipe_file(self.key, self._record(started))
        return True

    def _holder(self) -> dict[str, Any]:
        try:
            info = json.loads(self.fs.cat_file(self.key))
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self, started: str) -> None:
        for _ in range(2):
            if self._create(started):
                self._beat = threading.Thread(target=self._renew, args=(started,), daemon=True)
                self._beat.start()
                return
            holder = self._holder()
            age = time.time() - float(holder.get("renewed", 0))
            if age <= lease_seconds():
                who = f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('started')}"
                raise LayerdriftError(
                    f"run folder {str(self.folder)!r} is in use by another layerdrift process ({who}, last renewed "
                    f"{age:.0f} s ago); wait for it to finish, or choose another --out location (a dead holder's "
                    f"lease lapses {lease_seconds():.0f} s after its last renewal)."
                )
            remove_remote(self.folder / self.NAME)  # a dead holder's lease: take it over
        raise LayerdriftError(f"run folder {str(self.folder)!r}: another process took its lock at the same moment.")

    def _renew(self, started: str) -> None:
        while not self._stop.wait(lease_seconds() / 4):
            try:
                self.fs.pipe_file(self.key, self._record(started))
            except Exception:  # a missed renewal is retried at the next beat
                continue

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        remove_remote(self.folder / self.NAME)
