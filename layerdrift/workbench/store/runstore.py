"""The run store: one folder per run, chunked Zarr arrays plus a JSON manifest.

Layout::

    RUN/manifest.json                               config, hashes, versions, variants, captures (an index)
    RUN/.lock                                       held by the one process writing the run
    RUN/captures/VARIANT/PROMPTSET/job.json         what was asked for; once complete, the capture's record
    RUN/captures/VARIANT/PROMPTSET/batches/N.json   one per finished batch: its rows and a sha256 per array
    RUN/captures/VARIANT/PROMPTSET/tokens.json      tokenization of every prompt (prompt-set captures only)
    RUN/captures/VARIANT/PROMPTSET/POSITION/HOOK    Zarr array (n, d) or (n, max_len, d); one chunk per batch

Each hook point is its own array (a layer is read without touching the others). A batch counts as
written only when its marker exists, and every read checks each batch's rows against the marker's
checksum, so a deleted chunk, a marker without data or a damaged file is named, never read as
zeros (zarr returns the fill value for a missing chunk, and skips writing chunks equal to it).
The capture folders' own records are the truth; the manifest's ``captures`` is rebuilt from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

from layerdrift.core.files import (
    fault_point,
    now,
    read_json,
    read_json_or_none,
    remove_path,
    storage_errors,
    write_json_atomic,
)
from layerdrift.core.hashing import bytes_sha256
from layerdrift.core.naming import point_label
from layerdrift.core.objectstore import RunPath, make_folder, run_location
from layerdrift.errors import LayerdriftError

FORMAT = "layerdrift-run/2"
OLDER_FORMATS = ("layerdrift-run/1",)  # upgraded in place: their captures are recaptured, their results recomputed
MANIFEST = "manifest.json"
CAPTURES = "captures"
JOB = "job.json"


def rows_sha256(values: np.ndarray) -> str:
    """Checksum of a batch's rows as stored (float32, C order)."""
    return bytes_sha256(np.ascontiguousarray(values, dtype=np.float32).tobytes())


def batch_list(batches: list[int]) -> str:
    return ("batch " if len(batches) == 1 else "batches ") + ", ".join(str(b) for b in batches)


class CaptureJob:
    """One (variant, prompt set) capture: written batch by batch, resumable, verified on every read."""

    def __init__(self, folder: RunPath, fingerprint: str, n_prompts: int, batch_size: int):
        self.folder = folder
        self.fingerprint = fingerprint
        self.n_prompts = n_prompts
        self.batch_size = batch_size
        self._writable: dict[str, Any] = {}  # zarr arrays opened for writing, by 'position/hook'

    @classmethod
    def existing(cls, folder: RunPath) -> "CaptureJob | None":
        """The job recorded in a capture folder, or None when it has no readable record."""
        job = read_json_or_none(folder / JOB)
        if not isinstance(job, dict) or not {"fingerprint", "n_prompts", "batch_size"} <= job.keys():
            return None
        return cls(folder, job["fingerprint"], int(job["n_prompts"]), int(job["batch_size"]))

    @property
    def label(self) -> str:
        return f"{self.folder.parent.name}/{self.folder.name}"

    @property
    def root(self) -> RunPath:
        return self.folder.parent.parent.parent

    @property
    def n_batches(self) -> int:
        return -(-self.n_prompts // self.batch_size)

    def rows(self, batch: int) -> tuple[int, int]:
        return batch * self.batch_size, min(self.n_prompts, (batch + 1) * self.batch_size)

    def record(self) -> dict[str, Any] | None:
        job = read_json_or_none(self.folder / JOB)
        return job if isinstance(job, dict) and job.get("fingerprint") == self.fingerprint else None

    def is_complete(self) -> bool:
        return bool((self.record() or {}).get("complete"))

    # ---- batch markers ------------------------------------------------------------------
    def _marker(self, batch: int) -> RunPath:
        return self.folder / "batches" / f"{batch:06d}.json"

    def markers(self) -> dict[int, dict[str, Any]]:
        """Finished batches: batch -> marker (rows and a sha256 per 'position/hook' array)."""
        out = {}
        for b in range(self.n_batches):
            m = read_json_or_none(self._marker(b))
            if (
                isinstance(m, dict)
                and m.get("fingerprint") == self.fingerprint
                and m.get("rows") == list(self.rows(b))
                and isinstance(m.get("sha256"), dict)
            ):
                out[b] = m
        return out

    def prepare(self) -> set[int]:
        """Open a matching earlier attempt (returning its finished batches) or start afresh."""
        if self.record() is not None:
            bad = self.damaged_batches()
            self.forget([b for b in bad if self._marker(b).exists()])
            return set(range(self.n_batches)) - set(bad)
        self._writable.clear()
        with storage_errors(self.folder):
            remove_path(self.folder)
            make_folder(self.folder)
        write_json_atomic(
            self.folder / JOB,
            {
                "fingerprint": self.fingerprint,
                "n_prompts": self.n_prompts,
                "batch_size": self.batch_size,
                "complete": False,
                "started": now(),
            },
        )
        return set()

    def write_batch(self, batch: int, arrays: dict[tuple[str, str], np.ndarray]) -> None:
        """Write one batch's rows of every (position folder, hook) array, then its marker (the batch is done)."""
        start, stop = self.rows(batch)
        sums = {}
        with storage_errors(self.folder):
            for (pos, hook), values in arrays.items():
                arr = self._open_for_writing(pos, hook, (self.n_prompts, *values.shape[1:]))
                arr[start:stop] = values
                sums[f"{pos}/{hook}"] = rows_sha256(values)
                fault_point(f"capture {self.label} batch {batch} {pos}/{hook}")
        write_json_atomic(self._marker(batch), {"fingerprint": self.fingerprint, "rows": [start, stop], "sha256": sums})

    def _open_for_writing(self, pos: str, hook: str, shape: tuple[int, ...]) -> Any:
        """The Zarr array of one (position, hook), opened once per job (created on first use)."""
        import zarr
        from zarr.errors import ContainsArrayError

        key = f"{pos}/{hook}"
        if key not in self._writable:
            path = self.folder / key
            try:  # never overwrite: tasks of one capture on a cluster may create its arrays at the same moment
                arr = zarr.create_array(
                    store=str(path),
                    shape=shape,
                    chunks=(self.batch_size, *shape[1:]),
                    dtype="float32",
                    fill_value=0.0,
                    overwrite=False,
                )
            except ContainsArrayError:
                arr = zarr.open_array(store=str(path), mode="r+")
            if arr.shape != shape:
                raise LayerdriftError(
                    f"cached array {str(path)!r} has shape {arr.shape}, expected {shape}; delete "
                    f"{str(self.folder)!r} and run again."
                )
            self._writable[key] = arr
        return self._writable[key]

    def write_tokens(self, tokens: dict[str, Any]) -> None:
        write_json_atomic(self.folder / "tokens.json", tokens)

    def mark_complete(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Record the capture as finished, with its summary; returns the record."""
        job = self.record() or {}
        job.update(summary)
        job.update(complete=True, finished=now())
        write_json_atomic(self.folder / JOB, job)
        return job

    # ---- verification -------------------------------------------------------------------
    def _load(self, key: str) -> tuple[np.ndarray | None, dict[int, str]]:
        """The whole array (None if it is gone) and the batches whose chunk could not be decoded."""
        import zarr

        try:
            arr = zarr.open_array(store=str(self.folder / key), mode="r")
        except Exception:
            return None, {}
        try:
            return np.asarray(arr[...]), {}
        except Exception:
            data, unreadable = np.zeros(arr.shape, dtype=np.float32), {}
            for b in range(self.n_batches):
                start, stop = self.rows(b)
                try:
                    data[start:stop] = arr[start:stop]
                except Exception:
                    unreadable[b] = "its chunk is damaged (it cannot be decoded)"
            return data, unreadable

    def _check(
        self, key: str, loaded: tuple[np.ndarray | None, dict[int, str]], markers: dict[int, dict[str, Any]]
    ) -> dict[int, str]:
        """Batches of one array that cannot be trusted, with why."""
        data, bad = loaded[0], dict(loaded[1])
        for b in range(self.n_batches):
            m = markers.get(b)
            start, stop = self.rows(b)
            if b in bad:
                continue
            if m is None:
                bad[b] = "it has no finished-batch record"
            elif key not in m["sha256"]:
                bad[b] = f"its record lists no array {key!r}"
            elif data is None:
                bad[b] = "the array is missing or unreadable"
            elif rows_sha256(data[start:stop]) != m["sha256"][key]:
                bad[b] = "its rows differ from their checksum: a chunk is missing or damaged"
        return dict(sorted(bad.items()))

    def damaged_batches(self) -> dict[int, str]:
        """Every batch that cannot be trusted in any array, with why."""
        markers = self.markers()
        bad = {b: "it has no finished-batch record" for b in range(self.n_batches) if b not in markers}
        for key in sorted({k for m in markers.values() for k in m["sha256"]}):
            for b, why in self._check(key, self._load(key), markers).items():
                bad.setdefault(b, why)
        return dict(sorted(bad.items()))

    def forget(self, batches: list[int]) -> None:
        """Drop damaged batches' markers and the complete flag, so the next capture redoes exactly them."""
        if not batches:
            return
        for b in batches:
            self._marker(b).unlink(missing_ok=True)
        job = self.record()
        if job is not None and job.get("complete"):
            job["complete"] = False
            write_json_atomic(self.folder / JOB, job)

    def check_complete(self) -> tuple[bool, dict[int, str]]:
        """(complete and intact, damaged batches); damaged batches are forgotten so they are recaptured."""
        if not self.is_complete():
            return False, {}
        bad = self.damaged_batches()
        if bad:
            self.forget(list(bad))
        return not bad, bad

    def read(self, key: str) -> np.ndarray:
        """One array ('position/hook'), every batch checked against its marker; a clear error otherwise."""
        loaded = self._load(key)
        bad = self._check(key, loaded, self.markers())
        if bad:
            raise LayerdriftError(
                f"capture '{self.label}' in {str(self.root)!r} is missing {batch_list(list(bad))} "
                f"of {key!r} ({next(iter(bad.values()))}); "
                f"run `layerdrift run` again with the same config and --out {str(self.root)!r} to "
                f"recapture {'it' if len(bad) == 1 else 'them'}."
            )
        assert loaded[0] is not None
        return loaded[0]


def remove_legacy_files(root: RunPath) -> None:
    """Files of format 1 that nothing reads any more: flat result tables and their records, progress files."""
    for pattern in (
        "results/*.parquet",
        "results/meta.json",
        "results/experiments.json",
        "manifold/projections.npz",
        f"{CAPTURES}/*/*/progress.json",
    ):
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)


def is_run_folder(root: RunPath) -> bool:
    """A layerdrift run: it has a manifest, or capture records (its manifest was lost)."""
    return (root / MANIFEST).is_file() or any((root / CAPTURES).glob(f"*/*/{JOB}"))


class RunStore:
    """A run folder: read arrays per variant, prompt set, hook point and position, one layer at a time."""

    def __init__(self, root: RunPath, manifest: dict[str, Any]):
        self.root = root
        self.manifest = manifest
        self.read_only = False  # a cluster worker's view: the driver alone writes the manifest

    # ---- opening and saving -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | RunPath) -> "RunStore":
        """Open an existing run folder (a path or an fsspec URL such as ``s3://bucket/runs/x``) for reading; clear
        errors for missing, damaged or foreign folders."""
        root = run_location(path)
        with storage_errors(root, "read"):
            exists = root.is_dir()
        if not exists:
            raise LayerdriftError(
                f"run folder {str(root)!r} does not exist; run `layerdrift extract` or `layerdrift run` first."
            )
        manifest = read_json(root / MANIFEST, "run manifest")
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        if fmt != FORMAT:
            raise LayerdriftError(
                f"run folder {str(root)!r} has format {fmt!r}, but this layerdrift reads "
                f"{FORMAT!r}; run `layerdrift run` with its config and --out {str(root)!r} to "
                "upgrade it."
            )
        return cls(root, manifest)

    @classmethod
    def create_or_update(cls, path: str | RunPath, base: dict[str, Any]) -> "RunStore":
        """Open the run at ``path`` for writing (creating it), keeping what earlier runs recorded.

        A manifest that is damaged or gone is rebuilt: the captures' own records say what is finished.
        """
        root = run_location(path)
        if root.is_dir() and not is_run_folder(root) and any(p.name != ".lock" for p in root.iterdir()):
            raise LayerdriftError(
                f"folder {str(root)!r} exists, is not empty and is not a layerdrift run; choose another --out folder."
            )
        manifest = read_json_or_none(root / MANIFEST)
        manifest = manifest if isinstance(manifest, dict) else {}
        if manifest.get("format") not in (None, FORMAT, *OLDER_FORMATS):
            raise LayerdriftError(
                f"folder {str(root)!r} holds a run of format {manifest.get('format')!r}; choose another --out folder."
            )
        if manifest.get("format") in OLDER_FORMATS:
            remove_legacy_files(root)
        manifest = {
            "created": manifest.get("created", now()),
            "variants": manifest.get("variants", {}),
            **base,
            "format": FORMAT,
        }
        store = cls(root, manifest)
        store.reindex_captures()
        store.save()
        return store

    def reindex_captures(self) -> None:
        """Rebuild the manifest's capture index (and variant records) from every finished capture's record."""
        captures = {}
        for path in sorted((self.root / CAPTURES).glob(f"*/*/{JOB}")):
            record = read_json_or_none(path)
            if isinstance(record, dict) and record.get("complete"):
                variant = path.parent.parent.name
                captures[f"{variant}/{path.parent.name}"] = {k: v for k, v in record.items() if k != "variant_info"}
                if "variant_info" in record:
                    self.manifest["variants"].setdefault(variant, record["variant_info"])
        self.manifest["captures"] = captures

    def save(self) -> None:
        if self.read_only:
            return
        self.manifest["updated"] = now()
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def record_capture(self, variant: str, prompt_set: str, record: dict[str, Any]) -> None:
        """Add a finished capture to the manifest's index and save it."""
        self.manifest["captures"][f"{variant}/{prompt_set}"] = {k: v for k, v in record.items() if k != "variant_info"}
        self.save()

    # ---- layout -------------------------------------------------------------------------
    def capture_folder(self, variant: str, prompt_set: str) -> RunPath:
        return self.root / CAPTURES / variant / prompt_set

    def capture(self, variant: str, prompt_set: str) -> dict[str, Any]:
        """The record of a finished capture (n_prompts, batch_size, hooks, residual_points, positions, max_len, ...)."""
        entry = self.manifest.get("captures", {}).get(f"{variant}/{prompt_set}")
        if entry is None or not entry.get("complete"):
            have = ", ".join(sorted(self.manifest.get("captures", {}))) or "none"
            raise LayerdriftError(
                f"run {str(self.root)!r} has no finished capture for variant '{variant}' and "
                f"prompt set '{prompt_set}' (captures: {have})."
            )
        return entry

    def _job(self, variant: str, prompt_set: str) -> CaptureJob:
        entry = self.capture(variant, prompt_set)
        return CaptureJob(
            self.capture_folder(variant, prompt_set),
            entry["fingerprint"],
            int(entry["n_prompts"]),
            int(entry["batch_size"]),
        )

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
        """Every captured prompt set in config order (an ensemble's templates each as ``NAME``, ``NAME.t2``, ...)."""
        return list(self.manifest["prompt_sets"])

    def positions(self, variant: str, prompt_set: str) -> list[str]:
        return list(self.capture(variant, prompt_set)["positions"])

    def hook_points(self, variant: str, prompt_set: str) -> list[str]:
        return list(self.capture(variant, prompt_set)["hooks"])

    def residual_points(self, variant: str, prompt_set: str) -> list[str]:
        """Residual-stream hook names in depth order: embedding, block outputs, final norm."""
        return list(self.capture(variant, prompt_set)["residual_points"])

    def n_layers(self, variant: str) -> int:
        return int(self.manifest["variants"][variant]["n_layers"])

    def tokenization(self, variant: str, prompt_set: str) -> dict[str, Any]:
        """Texts, token ids, tokens and chosen positions of every prompt of a prompt-set capture."""
        entry = self.capture(variant, prompt_set)
        if "tokens_file" not in entry:
            kind = entry.get("kind", "experiment")
            raise LayerdriftError(
                f"capture '{variant}/{prompt_set}' is a {kind} capture of token sequences, which "
                "stores no tokenization; "
                "only the config's prompt sets store one (their captures have tokens.json)."
            )
        return read_json(self.root / entry["tokens_file"], "tokenization file")

    # ---- reading arrays -----------------------------------------------------------------
    def activations(
        self, variant: str, prompt_set: str, hook: str, position: str = "last"
    ) -> Float[np.ndarray, "n ..."]:
        """The captured array of one hook point: (n_prompts, d), or (n_prompts, max_len, d) for 'all'; every batch
        verified."""
        entry = self.capture(variant, prompt_set)
        if position not in entry["positions"]:
            raise LayerdriftError(
                f"position {position!r} was not captured for '{variant}/{prompt_set}'; captured: "
                f"{', '.join(entry['positions'])}."
            )
        if hook not in entry["hooks"]:
            raise LayerdriftError(
                f"hook point {hook!r} was not captured for '{variant}/{prompt_set}'; add it to "
                "capture.hooks and run again."
            )
        return self._job(variant, prompt_set).read(f"{entry['positions'][position]}/{hook}")

    def layer(
        self, variant: str, prompt_set: str, layer: int | str, position: str = "last"
    ) -> Float[np.ndarray, "n ..."]:
        """Residual stream at one point: an index (0 = embedding, i = block i-1 output, -1 = final norm), a label
        (``"embed"``, a block number such as ``"5"``, ``"final"``) or a hook name."""
        points = self.residual_points(variant, prompt_set)
        labels = [point_label(p) for p in points]
        if isinstance(layer, str):
            if layer not in labels and layer not in points:
                raise LayerdriftError(
                    f"layer {layer!r} is not a residual point of variant '{variant}'; use an index "
                    f"0..{len(points) - 1}, "
                    f"a label ({labels[0]}, {labels[1]} .. {labels[-2]}, {labels[-1]}) or a hook name."
                )
            layer = labels.index(layer) if layer in labels else points.index(layer)
        if not -len(points) <= layer < len(points):
            raise LayerdriftError(
                f"layer {layer} is out of range for variant '{variant}', which has residual "
                f"points 0..{len(points) - 1}."
            )
        return self.activations(variant, prompt_set, points[layer], position)
