"""k-nearest neighbours by cosine and their Jaccard overlap between variants."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from layerdrift.analyses.drift import l2_normalize


def cosine_similarity_matrix(x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n n"]:
    xn = l2_normalize(x)
    return xn @ xn.T


def knn_indices(x: Float[np.ndarray, "n d"], k: int = 10) -> Int[np.ndarray, "n k"]:
    """Indices of each row's k most cosine-similar other rows (self excluded), most similar first.

    Ties break toward the lower index (stable), so results are deterministic.
    """
    sim = cosine_similarity_matrix(x)
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    return order[:, :k]


def knn_jaccard(a: Float[np.ndarray, "n da"], b: Float[np.ndarray, "n db"], k: int = 10) -> Float[np.ndarray, " n"]:
    """Per concept: |N_a ∩ N_b| / |N_a ∪ N_b| of the k-NN sets in each variant (widths may differ)."""
    n = a.shape[0]
    na, nb = knn_indices(a, k), knn_indices(b, k)
    ma = np.zeros((n, n), dtype=bool)
    mb = np.zeros((n, n), dtype=bool)
    rows = np.arange(n)[:, None]
    ma[rows, na] = True
    mb[rows, nb] = True
    inter = (ma & mb).sum(1)
    return inter / (2 * k - inter)


def neighbour_list(x: Float[np.ndarray, "n d"], i: int, k: int = 10) -> list[tuple[int, float]]:
    """The k nearest neighbours of row i as (index, cosine similarity), most similar first."""
    xn = l2_normalize(x)
    sim = xn @ xn[i]
    sim[i] = -np.inf
    order = np.argsort(-sim, kind="stable")[:k]
    return [(int(j), float(sim[j])) for j in order]
