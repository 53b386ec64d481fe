"""Layer-aligned maps vs independent per-layer fits on the default run, side by side in one process.

For UMAP and PCA, aligned (``map_alignment = "layers"``) and unaligned (``"none"``):

- jump: the median over consecutive layers of the mean displacement of the reference's points, over the RMS
  distance of those points from their centroid in the later map;
- k-NN preservation: the mean share of each point's 10 nearest neighbours in the map that are among its 10
  nearest (cosine) neighbours in the residual stream, averaged over layers;
- time for every layer's fit.

Targets (issue 18): jump <= 0.25 (UMAP) and <= 0.15 (PCA); preservation no more than 0.05 below unaligned. For PCA
the floor any rotation or reflection can reach is printed too: the best one for the jump itself, per step, found on a
grid of angles.

    python benchmarks/maps.py [--run runs/smollm2-quantization] [--stride 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from layerdrift.analyses.drift import l2_normalize
from layerdrift.analyses.projection import joint_pca, joint_umap
from layerdrift.workbench.store.runstore import RunStore


def jump(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = a[0], b[0]
    return float(np.linalg.norm(pb - pa, axis=1).mean() / np.sqrt(((pb - pb.mean(0)) ** 2).sum(1).mean()))


def best_isometry_jump(a: np.ndarray, b: np.ndarray, steps: int = 3600) -> float:
    """The lowest ``jump(a, b moved)`` over every rotation and reflection of ``b`` (a grid of ``steps`` angles): what
    no rotation or reflection of a layer's own PCA map can beat."""
    angles = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1).reshape(-1, 2, 2)
    pa, best = a[0], np.inf
    for pb in (b[0], b[0] * [1, -1]):
        moved = np.einsum("nc,rdc->rnd", pb, rotations)
        best = min(best, float(np.linalg.norm(moved - pa, axis=2).mean(1).min()))
    spread = np.sqrt(((b[0] - b[0].mean(0)) ** 2).sum(1).mean())
    return best / spread


def knn_preservation(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    from sklearn.neighbors import NearestNeighbors

    xn = l2_normalize(x)
    high = NearestNeighbors(n_neighbors=k + 1).fit(xn).kneighbors(xn, return_distance=False)[:, 1:]
    low = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)[:, 1:]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(high, low)]))


def maps(xs: dict[int, list[np.ndarray]], method: str, aligned: bool) -> tuple[dict[int, np.ndarray], float]:
    """Every layer's map, fitted as the pipeline fits it; and the seconds it took."""
    out: dict[int, np.ndarray] = {}
    t0, previous = time.perf_counter(), None
    for layer, x in xs.items():
        start = previous if aligned else None
        out[layer] = joint_umap(x, seed=0, start=start) if method == "umap" else joint_pca(x, start=start)[0]
        previous = out[layer]
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/smollm2-quantization", help="a run of the default config")
    parser.add_argument("--stride", type=int, default=1, help="every n-th residual point (1: all)")
    args = parser.parse_args()
    store = RunStore.open(args.run)
    variants, ps = store.main_variants, store.prompt_sets[0]
    points = range(0, len(store.residual_points(store.reference, ps)), args.stride)
    xs = {p: [store.layer(v, ps, p) for v in variants] for p in points}
    joint_umap(xs[0], seed=0)  # numba compiles once, outside the timings
    results = {}
    print(f"{len(xs)} residual points x {len(variants)} variants x {xs[0][0].shape[0]} concepts")
    print(f"{'method':6} {'alignment':9} {'jump':>7} {'kNN':>7} {'time':>8}")
    for method, aligned in itertools.product(("umap", "pca"), (False, True)):
        coords, seconds = maps(xs, method, aligned)
        jumps = [jump(coords[a], coords[b]) for a, b in itertools.pairwise(coords)]
        knn = float(np.mean([knn_preservation(np.concatenate(xs[p]), coords[p].reshape(-1, 2)) for p in coords]))
        name = "layers" if aligned else "none"
        results[f"{method}_{name}"] = {"jump": float(np.median(jumps)), "knn": knn, "seconds": seconds}
        print(f"{method:6} {name:9} {np.median(jumps):7.3f} {knn:7.3f} {seconds:7.1f}s")
        if method == "pca" and not aligned:
            floor = float(np.median([best_isometry_jump(coords[a], coords[b]) for a, b in itertools.pairwise(coords)]))
            results["pca_best_isometry"] = {"jump": floor}
            print(f"{'pca':6} {'best O(2)':9} {floor:7.3f}   (the lowest jump any rotation or reflection reaches)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
