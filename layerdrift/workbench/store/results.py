"""Result sets: the tables (and arrays) of one analysis or experiment, made visible all at once.

Layout::

    RUN/results/NAME.json                    the pointer: fingerprint, generation, sha256 of each file, meta
    RUN/results/NAME/GENERATION/TABLE.parquet
    RUN/results/NAME/GENERATION/ARRAYS.npz

A writer fills a fresh generation folder, then replaces the pointer in one rename, then removes
older generations. A reader follows the pointer and checks every file against its checksum. So a
process killed at any moment leaves the old set or the new one, never tables of two configs side
by side, and a damaged file is named instead of being read.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from layerdrift.core.files import fault_point, read_json_or_none, remove_path, storage_errors, write_json_atomic
from layerdrift.core.hashing import bytes_sha256
from layerdrift.core.naming import with_ordered_labels
from layerdrift.core.objectstore import RunPath, make_folder
from layerdrift.errors import LayerdriftError

RESULTS = "results"
# Columns renamed since run folders were first written, applied when an older table is read:
# (result set, table) -> {old name: new name}. See docs/python-api.md.
RENAMED_COLUMNS: dict[tuple[str, str], dict[str, str]] = {
    ("patching", "patching"): {"layer": "block"},
    ("behaviour", "behaviour_steering"): {"layer": "block"},
    ("trajectory", "concentration"): {"layer": "label"},
    ("trajectory", "velocity_band"): {"layer": "label"},
}


def current_table(result_set: str, stem: str, table: pd.DataFrame) -> pd.DataFrame:
    """A table as this version writes it: renamed columns under their new names, point labels ordered."""
    renames = {old: new for old, new in RENAMED_COLUMNS.get((result_set, stem), {}).items() if new not in table}
    return with_ordered_labels(table.rename(columns=renames) if renames else table)


@dataclass
class ResultSet:
    """What one analysis or experiment produced under one fingerprint."""

    name: str
    fingerprint: str
    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # file stem -> named arrays

    def __post_init__(self) -> None:
        self.tables = {stem: current_table(self.name, stem, t) for stem, t in self.tables.items()}


def results_dir(root: RunPath) -> RunPath:
    return root / RESULTS


def _pointer(root: RunPath, name: str) -> RunPath:
    return results_dir(root) / f"{name}.json"


def save_result_set(root: RunPath, result: ResultSet) -> None:
    """Write a result set into a new generation folder, switch the pointer to it, drop older generations."""
    base = results_dir(root) / result.name
    generation = f"{result.fingerprint[:12]}-{uuid.uuid4().hex[:8]}"
    folder = base / generation
    files: dict[str, str] = {}
    with storage_errors(folder):
        make_folder(folder)
        for stem, table in result.tables.items():
            buf = io.BytesIO()
            table.to_parquet(buf, index=False)
            (folder / f"{stem}.parquet").write_bytes(buf.getvalue())
            files[f"{stem}.parquet"] = bytes_sha256(buf.getvalue())
            fault_point(f"result set {result.name} table {stem}")
        for stem, arrays in result.arrays.items():
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            (folder / f"{stem}.npz").write_bytes(buf.getvalue())
            files[f"{stem}.npz"] = bytes_sha256(buf.getvalue())
    write_json_atomic(
        _pointer(root, result.name),
        {
            "name": result.name,
            "fingerprint": result.fingerprint,
            "generation": generation,
            "files": files,
            "meta": result.meta,
        },
    )
    for old in base.iterdir():
        if old.name != generation:
            remove_path(old)


class StoredResultSet:
    """A saved result set, read lazily: the pointer at once, each file on first use (checked against its sha256)."""

    def __init__(self, root: RunPath, name: str):
        self.root, self.name = root, name
        pointer = read_json_or_none(_pointer(root, name))
        if not isinstance(pointer, dict) or not {"fingerprint", "generation", "files"} <= pointer.keys():
            if not _pointer(root, name).exists():
                raise LayerdriftError(
                    f"run {str(root)!r} has no {name} results yet; run `layerdrift run` with its "
                    f"config and --out {str(root)!r} to compute them."
                )
            raise LayerdriftError(f"the {name} results record {str(_pointer(root, name))!r} is damaged; {self.again}.")
        self.fingerprint: str = pointer["fingerprint"]
        self.meta: dict[str, Any] = pointer.get("meta") or {}
        self.files: dict[str, str] = pointer["files"]
        self.folder = results_dir(root) / name / pointer["generation"]
        self._loaded: dict[str, Any] = {}

    @property
    def again(self) -> str:
        return f"run `layerdrift run` again with the run's config and --out {str(self.root)!r} to rebuild it"

    def names(self, kind: str) -> list[str]:
        """Stems of the files of one kind (``parquet`` tables or ``npz`` arrays), in saved order."""
        return [f.rsplit(".", 1)[0] for f in self.files if f.rsplit(".", 1)[1] == kind]

    def _bytes(self, file: str) -> bytes:
        path = self.folder / file
        try:
            data = path.read_bytes()
        except OSError:
            raise LayerdriftError(f"result file {str(path)!r} is missing; {self.again}.") from None
        if bytes_sha256(data) != self.files[file]:
            raise LayerdriftError(
                f"result file {str(path)!r} is damaged (its checksum differs from the record); {self.again}."
            )
        return data

    def table(self, stem: str) -> pd.DataFrame:
        if stem not in self._loaded:
            table = pd.read_parquet(io.BytesIO(self._bytes(f"{stem}.parquet")))
            self._loaded[stem] = current_table(self.name, stem, table)
        return self._loaded[stem]

    def arrays(self, stem: str) -> dict[str, np.ndarray]:
        key = f"{stem}.npz"
        if key not in self._loaded:
            with np.load(io.BytesIO(self._bytes(key)), allow_pickle=False) as npz:
                self._loaded[key] = {k: npz[k] for k in npz.files}
        return self._loaded[key]

    def load(self) -> ResultSet:
        """Every file, checked."""
        tables = {stem: self.table(stem) for stem in self.names("parquet")}
        arrays = {stem: self.arrays(stem) for stem in self.names("npz")}
        return ResultSet(self.name, self.fingerprint, tables, self.meta, arrays)


def read_result_set(root: RunPath, name: str) -> ResultSet:
    """The current result set ``name`` of a run, every file checked; one clear sentence if it is missing or damaged."""
    return StoredResultSet(root, name).load()


def stored_result_sets(root: RunPath) -> dict[str, StoredResultSet]:
    """Every result set a run folder has, by name (pointers read; files on demand)."""
    base = results_dir(root)
    names = sorted(p.stem for p in base.glob("*.json")) if base.is_dir() else []
    return {name: StoredResultSet(root, name) for name in names}


def cached_result_set(root: RunPath, name: str, fingerprint: str) -> ResultSet | None:
    """The saved result set if it was made under this fingerprint and is intact; otherwise None (recompute)."""
    pointer = read_json_or_none(_pointer(root, name))
    if not isinstance(pointer, dict) or pointer.get("fingerprint") != fingerprint:
        return None
    try:
        return read_result_set(root, name)
    except LayerdriftError:
        return None


def has_result_set(root: RunPath, name: str) -> bool:
    return _pointer(root, name).exists()


def remove_orphan_generations(root: RunPath) -> None:
    """Delete generation folders no pointer names (left by a writer killed before its switch)."""
    base = results_dir(root)
    if not base.is_dir():
        return
    for folder in base.iterdir():
        if folder.is_dir() and _pointer(root, folder.name).exists():
            current = (read_json_or_none(_pointer(root, folder.name)) or {}).get("generation")
            for generation in folder.iterdir():
                if generation.name != current:
                    remove_path(generation)
