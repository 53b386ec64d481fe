"""umap-learn's cosine distance between every two rows, compiled, bit for bit what umap-learn computes.

Below its exact-neighbour size umap-learn gets all pairwise distances from sklearn's ``pairwise_distances``, a
Python loop calling ``umap.distances.cosine`` once per pair (most of a map's time). ``pairwise_cosine`` fills the
same matrix (upper triangle, mirrored, then the diagonal) with the same sums in the same order: float32 products
added one by one into a float64. The speed comes from elsewhere: each row's squared norm is summed once instead of
once per pair, eight pairs share a pass over the row (eight independent sums in flight instead of one chain), and
the rows are spread over the cores. ``layerdrift.core.jit`` caches it on disk with UMAP's own compiled functions.
"""

from __future__ import annotations

import numba
import numpy as np
from umap.distances import cosine

LANES = 8  # pairs per pass over a row (the unrolled sums below)


@numba.njit(inline="always")
def _finish(dot: float, norm_x: float, norm_y: float) -> float:
    """The end of ``umap.distances.cosine``: 0 between two zero vectors, 1 between a zero vector and another."""
    if norm_x == 0.0 and norm_y == 0.0:
        return 0.0
    if norm_x == 0.0 or norm_y == 0.0:
        return 1.0
    return 1.0 - (dot / np.sqrt(norm_x * norm_y))


@numba.njit(parallel=True)
def pairwise_cosine(x: np.ndarray) -> np.ndarray:
    """(m, m) cosine distances of the rows of a C-contiguous (m, d) array, each cell written once."""
    n, d = x.shape
    norms = np.zeros(n)
    for i in numba.prange(n):
        s = 0.0
        for k in range(d):
            s += x[i, k] ** 2
        norms[i] = s
    out = np.zeros((n, n), dtype=x.dtype)
    for i in numba.prange(n):
        j = i + 1
        while j + LANES <= n:
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
            for k in range(d):
                xi = x[i, k]
                a0 += xi * x[j, k]
                a1 += xi * x[j + 1, k]
                a2 += xi * x[j + 2, k]
                a3 += xi * x[j + 3, k]
                a4 += xi * x[j + 4, k]
                a5 += xi * x[j + 5, k]
                a6 += xi * x[j + 6, k]
                a7 += xi * x[j + 7, k]
            for t, dot in enumerate((a0, a1, a2, a3, a4, a5, a6, a7)):
                out[i, j + t] = _finish(dot, norms[i], norms[j + t])
            j += LANES
        for rest in range(j, n):
            dot = 0.0
            for k in range(d):
                dot += x[i, k] * x[rest, k]
            out[i, rest] = _finish(dot, norms[i], norms[rest])
    out = out + out.T
    for i in range(n):
        out[i, i] = cosine(x[i], x[i])
    return out
