"""Degenerate residual points: where the prompts' vectors do not vary, so no geometry can be read.

If every prompt ends in the same token, the embedding gives them one shared vector: cosine drift is then
0 for every concept, every neighbour list is a tie, Jaccard is 1 and CKA is 0/0. Such a point says nothing
about the variants, so every metric there is NaN and the point is named with its reason.

A point is degenerate when the spread of the n vectors around their mean is below numerical noise,
``||X - mean(X)||_F <= tol * ||X||_F``; ``tol`` = 1e-6 is far above float32 rounding of identical
vectors (exactly 0) and far below any real spread (1e-2 or more between different concepts).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float

SPREAD_TOLERANCE = 1e-6


def relative_spread(x: Float[np.ndarray, "... n d"]) -> Float[np.ndarray, "..."]:
    """||X - mean(X)||_F / ||X||_F over the n rows (0 for a zero matrix)."""
    x = np.asarray(x, dtype=np.float64)
    centred = np.linalg.norm(x - x.mean(axis=-2, keepdims=True), axis=(-2, -1))
    total = np.linalg.norm(x, axis=(-2, -1))
    return np.divide(centred, total, out=np.zeros_like(total), where=total > 0)


def degenerate_points(
    stack: Float[np.ndarray, "points n d"], tol: float = SPREAD_TOLERANCE
) -> Bool[np.ndarray, " points"]:
    """Which points' vectors do not vary across the n prompts."""
    return relative_spread(stack) <= tol


def degenerate_reason(label: str, shared_last_token: str | None) -> str:
    """One sentence for a degenerate point: why nothing is measured there."""
    if shared_last_token is not None:
        why = f"every prompt ends in the token {shared_last_token!r}, so all prompts share one vector"
    else:
        why = "the prompts' vectors do not vary (relative spread below 1e-6)"
    return f"at {label} {why}: drift, Jaccard, CKA, effective rank and the maps are undefined there and left out"
