"""The run store: one folder per run, chunked Zarr arrays plus a JSON manifest.

Layout::

    RUN/manifest.json                        config, hashes, versions, variants, captures
    RUN/captures/VARIANT/PROMPTSET/job.json  fingerprint of what was asked for
    RUN/captures/VARIANT/PROMPTSET/progress.json   batches already written (atomic)
    RUN/captures/VARIANT/PROMPTSET/tokens.json     tokenization of every prompt
    RUN/captures/VARIANT/PROMPTSET/POSITION/HOOK   Zarr array (n, d) or (n, max_len, d)

Each hook point is its own array (a layer is read without touching the others); chunks hold one
batch of rows and are written atomically; a batch counts as done only once ``progress.json``
says so, so a run killed at any moment resumes and ends with identical arrays.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from layerdrift.errors import LayerdriftError

FORMAT = "layerdrift-run/1"
MANIFEST = "manifest.json"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file and rename it over ``path`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayerdriftError(f"{what} {str(path)!r} is missing; run `layerdrift extract` for this run again.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LayerdriftError(f"{what} {str(path)!r} is corrupt (not valid JSON); delete it and run `layerdrift extract` again.") from None


def read_cached_json(path: Path, fingerprint: str) -> Any | None:
    """A cached JSON object if it exists, parses and carries this fingerprint; otherwise None (recompute)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("fingerprint") == fingerprint else None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CaptureJob:
    """Writer for one (variant, prompt set) capture: resumable, batch by batch."""

    def __init__(self, folder: Path, fingerprint: str, n_prompts: int, batch_size: int):
        self.folder = folder
        self.fingerprint = fingerprint
        self.n_prompts = n_prompts
        self.batch_size = batch_size

    @property
    def n_batches(self) -> int:
        return -(-self.n_prompts // self.batch_size)

    def _job(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / "job.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def is_complete(self) -> bool:
        job = self._job()
        return bool(job and job.get("fingerprint") == self.fingerprint and job.get("complete"))

    def prepare(self) -> set[int]:
        """Open a matching earlier attempt (returning its finished batches) or start afresh."""
        job = self._job()
        if job and job.get("fingerprint") == self.fingerprint:
            try:
                done = set(json.loads((self.folder / "progress.json").read_text(encoding="utf-8"))["done"])
            except (OSError, json.JSONDecodeError, KeyError, UnicodeDecodeError):
                done = set()
            return done
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        write_json_atomic(self.folder / "job.json", {"fingerprint": self.fingerprint, "n_prompts": self.n_prompts, "batch_size": self.batch_size, "complete": False, "started": now()})
        write_json_atomic(self.folder / "progress.json", {"done": []})
        return set()

    def write_batch(self, batch: int, arrays: dict[tuple[str, str], np.ndarray], done: set[int]) -> None:
        """Write one batch's rows of every (position folder, hook) array, then mark the batch done."""
        import zarr

        start = batch * self.batch_size
        for (pos, hook), values in arrays.items():
            path = self.folder / pos / hook
            shape = (self.n_prompts, *values.shape[1:])
            if (path / "zarr.json").is_file():
                arr = zarr.open_array(store=str(path), mode="r+")
                if arr.shape != shape:
                    raise LayerdriftError(f"cached array {str(path)!r} has shape {arr.shape}, expected {shape}; delete {str(self.folder)!r} and extract again.")
            else:
                arr = zarr.create_array(store=str(path), shape=shape, chunks=(self.batch_size, *values.shape[1:]), dtype="float32", fill_value=0.0, overwrite=True)
            arr[start : start + values.shape[0]] = values
        done.add(batch)
        write_json_atomic(self.folder / "progress.json", {"done": sorted(done)})

    def write_tokens(self, tokens: dict[str, Any]) -> None:
        write_json_atomic(self.folder / "tokens.json", tokens)

    def mark_complete(self, summary: dict[str, Any]) -> None:
        job = self._job() or {}
        job.update(summary)
        job.update(complete=True, finished=now())
        write_json_atomic(self.folder / "job.json", job)


class RunStore:
    """A run folder: read arrays per variant, prompt set, hook point and position, one layer at a time."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self.manifest = manifest

    # ---- opening and saving -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "RunStore":
        """Open an existing run folder (read-only use); clear errors for missing or foreign folders."""
        root = Path(path)
        if not root.is_dir():
            raise LayerdriftError(f"run folder {str(root)!r} does not exist; run `layerdrift extract` or `layerdrift run` first.")
        manifest = read_json(root / MANIFEST, "run manifest")
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        if fmt != FORMAT:
            raise LayerdriftError(f"run folder {str(root)!r} has format {fmt!r}, but this layerdrift reads {FORMAT!r}; re-run the extraction with this version.")
        return cls(root, manifest)

    @classmethod
    def create_or_update(cls, path: str | Path, base: dict[str, Any]) -> "RunStore":
        """Open the run at ``path`` for writing (creating it), keeping what earlier runs recorded."""
        root = Path(path)
        manifest: dict[str, Any] = {}
        if (root / MANIFEST).is_file():
            try:
                manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                manifest = {}
            if manifest.get("format") not in (None, FORMAT):
                raise LayerdriftError(f"folder {str(root)!r} holds a run of format {manifest.get('format')!r}; choose another --out folder.")
        elif root.is_dir() and any(root.iterdir()):
            raise LayerdriftError(f"folder {str(root)!r} exists, is not empty and is not a layerdrift run; choose another --out folder.")
        manifest = {"format": FORMAT, "created": manifest.get("created", now()), "variants": manifest.get("variants", {}), "captures": manifest.get("captures", {}), **base}
        store = cls(root, manifest)
        store.save()
        return store

    def save(self) -> None:
        self.manifest["updated"] = now()
        write_json_atomic(self.root / MANIFEST, self.manifest)

    # ---- layout -------------------------------------------------------------------------
    def capture_folder(self, variant: str, prompt_set: str) -> Path:
        return self.root / "captures" / variant / prompt_set

    def _capture(self, variant: str, prompt_set: str) -> dict[str, Any]:
        entry = self.manifest.get("captures", {}).get(f"{variant}/{prompt_set}")
        if entry is None or not entry.get("complete"):
            have = ", ".join(sorted(self.manifest.get("captures", {}))) or "none"
            raise LayerdriftError(f"run {str(self.root)!r} has no finished capture for variant '{variant}' and prompt set '{prompt_set}' (captures: {have}).")
        return entry

    @property
    def variants(self) -> list[str]:
        """Variant names in config order."""
        return [v["name"] for v in self.manifest["config"]["variants"]]

    @property
    def series(self) -> dict[str, list[str]]:
        """Checkpoint series: name -> variant names in training order."""
        return dict(self.manifest.get("series", {}))

    @property
    def main_variants(self) -> list[str]:
        """Variants of the headline analyses: every plain variant, and of each series only its last checkpoint."""
        inner = {v for members in self.series.values() for v in members[:-1]}
        return [v for v in self.variants if v not in inner]

    @property
    def reference(self) -> str:
        return self.manifest["reference"]

    @property
    def prompt_sets(self) -> list[str]:
        return [p["name"] for p in self.manifest["config"]["prompt_sets"]]

    def positions(self, variant: str, prompt_set: str) -> list[str]:
        return list(self._capture(variant, prompt_set)["positions"])

    def hook_points(self, variant: str, prompt_set: str) -> list[str]:
        return list(self._capture(variant, prompt_set)["hooks"])

    def residual_points(self, variant: str, prompt_set: str) -> list[str]:
        """Residual-stream hook names in depth order: embedding, block outputs, final norm."""
        return list(self._capture(variant, prompt_set)["residual_points"])

    def n_layers(self, variant: str) -> int:
        return int(self.manifest["variants"][variant]["n_layers"])

    def tokenization(self, variant: str, prompt_set: str) -> dict[str, Any]:
        self._capture(variant, prompt_set)
        return read_json(self.capture_folder(variant, prompt_set) / "tokens.json", "tokenization file")

    # ---- reading arrays -----------------------------------------------------------------
    def activations(self, variant: str, prompt_set: str, hook: str, position: str = "last") -> Float[np.ndarray, "n ..."]:
        """The captured array of one hook point: (n_prompts, d), or (n_prompts, max_len, d) for 'all'."""
        import zarr

        entry = self._capture(variant, prompt_set)
        if position not in entry["positions"]:
            raise LayerdriftError(f"position {position!r} was not captured for '{variant}/{prompt_set}'; captured: {', '.join(entry['positions'])}.")
        if hook not in entry["hooks"]:
            raise LayerdriftError(f"hook point {hook!r} was not captured for '{variant}/{prompt_set}'; add it to capture.hooks and extract again.")
        path = self.capture_folder(variant, prompt_set) / entry["positions"][position] / hook
        try:
            return np.asarray(zarr.open_array(store=str(path), mode="r")[...])
        except Exception as err:
            raise LayerdriftError(f"cached array {str(path)!r} is unreadable ({type(err).__name__}); delete {str(path.parent.parent)!r} and run `layerdrift extract` again to recapture it.") from None

    def layer(self, variant: str, prompt_set: str, layer: int, position: str = "last") -> Float[np.ndarray, "n ..."]:
        """Residual stream at depth ``layer``: 0 = embedding, i = block i-1 output, -1 = final norm."""
        points = self.residual_points(variant, prompt_set)
        if not -len(points) <= layer < len(points):
            raise LayerdriftError(f"layer {layer} is out of range for variant '{variant}', which has residual points 0..{len(points) - 1}.")
        return self.activations(variant, prompt_set, points[layer], position)
