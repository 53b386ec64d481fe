"""Cosine drift between two variants' concept vectors, and orthogonal Procrustes alignment."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from layerdrift.errors import LayerdriftError


def l2_normalize(x: Float[np.ndarray, "... d"]) -> Float[np.ndarray, "... d"]:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def cosine_drift(a: Float[np.ndarray, "n d"], b: Float[np.ndarray, "n d"]) -> Float[np.ndarray, " n"]:
    """Per concept: 1 - cos(a_i, b_i) of L2-normalised vectors (EmbeddingDrift's drift)."""
    if a.shape != b.shape:
        raise LayerdriftError(
            f"cosine drift needs vectors of one width, but the variants give {a.shape[-1]} "
            f"and {b.shape[-1]} dimensions; "
            "compare them with CKA / Jaccard, or request aligned drift (align = 'procrustes')."
        )
    return 1.0 - np.einsum("nd,nd->n", l2_normalize(a), l2_normalize(b))


def drift_by_layer(a: Float[np.ndarray, "l n d"], b: Float[np.ndarray, "l n d"]) -> Float[np.ndarray, "l n"]:
    """Cosine drift of every concept at every layer (stacked layers in, one einsum)."""
    if a.shape != b.shape:
        return cosine_drift(a, b)  # raises the width message
    return 1.0 - np.einsum("lnd,lnd->ln", l2_normalize(a), l2_normalize(b))


def procrustes_align(a: Float[np.ndarray, "n da"], b: Float[np.ndarray, "n db"]) -> Float[np.ndarray, "n db"]:
    """``a`` mapped into ``b``'s space by the (semi-)orthogonal W minimising ||a W - b||_F (Schönemann 1966).

    Rows are L2-normalised first so the map rotates directions, not norms.
    """
    an, bn = l2_normalize(a), l2_normalize(b)
    u, _, vt = np.linalg.svd(an.T @ bn, full_matrices=False)
    return an @ (u @ vt)


def percentile_rank(values: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """Percent of the finite values <= each value (ties share the upper rank), in (0, 100]; NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.sort(values[np.isfinite(values)])
    ranks = 100.0 * np.searchsorted(finite, values, side="right") / max(len(finite), 1)
    return np.where(np.isfinite(values), ranks, np.nan)
