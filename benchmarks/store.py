"""What the run store's integrity checks cost: verified writes and reads vs plain Zarr.

Baseline: the same Zarr arrays (one per hook point, one chunk per batch, float32) written with
``arr[rows] = values`` and read with ``arr[...]``, nothing else. layerdrift adds a sha256 per
array and batch, one finished-batch record per batch, and on every read the check of each batch
against its record. Both are timed side by side (interleaved, median of repeats) on synthetic
activations shaped like SmolLM2's residual stream (32 points, d = 576).

    python benchmarks/store.py [--prompts 2350] [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from layerdrift.workbench.store.runstore import CaptureJob

POINTS, D_MODEL = 32, 576


def write_verified(folder: Path, data: np.ndarray, batch_size: int) -> CaptureJob:
    job = CaptureJob(folder, "bench", data.shape[1], batch_size)
    job.prepare()
    for b in range(job.n_batches):
        start, stop = job.rows(b)
        job.write_batch(b, {("last", f"p{p}"): data[p, start:stop] for p in range(POINTS)})
    return job


def write_plain(folder: Path, data: np.ndarray, batch_size: int) -> None:
    arrays = [
        zarr.create_array(
            store=str(folder / f"p{p}"),
            shape=data.shape[1:],
            chunks=(batch_size, D_MODEL),
            dtype="float32",
            fill_value=0.0,
            overwrite=True,
        )
        for p in range(POINTS)
    ]
    for start in range(0, data.shape[1], batch_size):
        for p, arr in enumerate(arrays):
            arr[start : start + batch_size] = data[p, start : start + batch_size]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2350)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = np.random.default_rng(0).normal(size=(POINTS, args.prompts, D_MODEL)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in ("write_layerdrift", "write_zarr", "read_layerdrift", "read_zarr")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for r in range(args.repeats):
            ours, plain = root / f"ours{r}", root / f"plain{r}"
            times["write_layerdrift"].append(timed(lambda: write_verified(ours, data, args.batch_size)))
            times["write_zarr"].append(timed(lambda: write_plain(plain, data, args.batch_size)))
            job = CaptureJob(ours, "bench", args.prompts, args.batch_size)
            got: list[np.ndarray] = []
            times["read_layerdrift"].append(timed(lambda: got.extend(job.read(f"last/p{p}") for p in range(POINTS))))
            times["read_zarr"].append(
                timed(
                    lambda: [
                        np.asarray(zarr.open_array(store=str(plain / f"p{p}"), mode="r")[...]) for p in range(POINTS)
                    ]
                )
            )
            assert all(np.array_equal(g, data[p]) for p, g in enumerate(got))
            shutil.rmtree(ours), shutil.rmtree(plain)
    med = {k: statistics.median(v) for k, v in times.items()}
    size = data.nbytes / 2**20
    print(
        f"{POINTS} hook points x {args.prompts} prompts x d {D_MODEL} ({size:.0f} MiB "
        f"float32), batch {args.batch_size}, median of {args.repeats}:"
    )
    for what in ("write", "read"):
        print(
            f"  {what}: layerdrift (checksums, batch "
            f"records{', verified' if what == 'read' else ''}) "
            f"{med[f'{what}_layerdrift']:.3f} s"
            f" vs plain zarr {med[f'{what}_zarr']:.3f} s, ratio {med[f'{what}_layerdrift'] / med[f'{what}_zarr']:.2f}"
        )
    print(
        json.dumps(
            {
                **med,
                "write_ratio": med["write_layerdrift"] / med["write_zarr"],
                "read_ratio": med["read_layerdrift"] / med["read_zarr"],
            }
        )
    )


if __name__ == "__main__":
    main()
