"""Persistent homology of point clouds: Vietoris-Rips diagrams, their summaries, and distances between diagrams.

Diagrams are (bars, 2) arrays of (birth, death) with finite deaths (the one infinite H0 bar is dropped).
Distances use the L-infinity ground metric with the diagonal as a free partner (Cohen-Steiner et al. 2007;
Mileyko et al. 2011): the order-p Wasserstein distance is an optimal assignment on the diagonal-augmented
cost matrix; the bottleneck distance is the smallest threshold at which a perfect matching exists.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial.distance import pdist, squareform

Diagram = Float[np.ndarray, "bars 2"]


def pairwise_euclidean(x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n n"]:
    """Euclidean distance matrix from exact differences (float64).

    Not the Gram trick: its cancellation error (about sqrt(eps) times the norm) turns duplicate points
    into short fake bars, and residual norms are large.
    """
    return squareform(pdist(np.asarray(x, dtype=np.float64)))


def rips_diagrams(distances: Float[np.ndarray, "n n"], maxdim: int = 1, engine: str = "giotto-ph") -> list[Diagram]:
    """Vietoris-Rips persistence diagrams H0..H_maxdim of a distance matrix (giotto-ph or ripser).

    Infinite bars and zero-length bars (duplicate points; the engines disagree on reporting them) are dropped.
    """
    if engine == "giotto-ph":
        from gph import ripser_parallel

        dgms = ripser_parallel(distances, maxdim=maxdim, metric="precomputed", n_threads=1)["dgms"]
    elif engine == "ripser":
        from ripser import ripser

        dgms = ripser(distances, maxdim=maxdim, distance_matrix=True)["dgms"]
    else:
        raise ValueError(f"unknown persistence engine {engine!r}")
    return [np.asarray(d[np.isfinite(d[:, 1]) & (d[:, 1] > d[:, 0])], dtype=np.float64).reshape(-1, 2) for d in dgms]


def lifetimes(diagram: Diagram) -> Float[np.ndarray, " bars"]:
    return diagram[:, 1] - diagram[:, 0]


def persistent_entropy(diagram: Diagram) -> float:
    """Shannon entropy of the normalised lifetimes: -sum (l / L) log (l / L) (Atienza et al. 2020)."""
    life = lifetimes(diagram)
    life = life[life > 0]
    if life.size == 0:
        return 0.0
    p = life / life.sum()
    return float(-(p * np.log(p)).sum())


def _moments(prefix: str, values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {f"{prefix}_{s}": 0.0 for s in ("mean", "std", "min", "q25", "median", "q75", "max")}
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        f"{prefix}_mean": float(values.mean()),
        f"{prefix}_std": float(values.std()),
        f"{prefix}_min": float(q[0]),
        f"{prefix}_q25": float(q[1]),
        f"{prefix}_median": float(q[2]),
        f"{prefix}_q75": float(q[3]),
        f"{prefix}_max": float(q[4]),
    }


def diagram_summary(diagram: Diagram) -> dict[str, float]:
    """Bar count, total persistence, persistent entropy, and barcode statistics of births, deaths, midpoints and
    lifetimes."""
    life = lifetimes(diagram)
    out = {
        "bars": float(len(diagram)),
        "total_persistence": float(life.sum()),
        "persistent_entropy": persistent_entropy(diagram),
        "total_persistence_sq": float((life**2).sum()),
    }
    for name, values in (
        ("birth", diagram[:, 0]),
        ("death", diagram[:, 1]),
        ("midpoint", diagram.mean(axis=1)),
        ("lifetime", life),
    ):
        out.update(_moments(name, values))
    return out


def _augmented_costs(a: Diagram, b: Diagram) -> np.ndarray:
    """(m + n) square cost matrix: point-point L-inf costs, point-diagonal costs, and free diagonal-diagonal pairs."""
    m, n = len(a), len(b)
    cost = np.zeros((m + n, m + n))
    if m and n:
        cost[:m, :n] = np.maximum(np.abs(a[:, None, 0] - b[None, :, 0]), np.abs(a[:, None, 1] - b[None, :, 1]))
    da = (a[:, 1] - a[:, 0]) / 2.0
    db = (b[:, 1] - b[:, 0]) / 2.0
    cost[:m, n:] = np.inf
    cost[m:, :n] = np.inf
    if m:
        cost[np.arange(m), n + np.arange(m)] = da
    if n:
        cost[m + np.arange(n), np.arange(n)] = db
    return cost


def wasserstein_distance(a: Diagram, b: Diagram, order: float = 2.0) -> float:
    """Order-p Wasserstein distance between two diagrams: (min over matchings of sum cost^p)^(1/p)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    cost = _augmented_costs(a, b)
    finite = np.where(np.isinf(cost), 1e300, cost**order)
    rows, cols = linear_sum_assignment(finite)
    return float(finite[rows, cols].sum() ** (1.0 / order))


def bottleneck_distance(a: Diagram, b: Diagram) -> float:
    """Smallest eps such that a matching (diagonal allowed) moves no point by more than eps; binary search over
    candidate
    costs."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    cost = _augmented_costs(a, b)
    size = cost.shape[0]
    candidates = np.unique(cost[np.isfinite(cost)])
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        graph = csr_matrix(cost <= candidates[mid])
        if np.all(maximum_bipartite_matching(graph, perm_type="column") >= 0) and size:
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo])
