"""Residual points of models of different depth, matched by relative depth.

A model with n residual points has the embedding (point 0), L = n - 2 block outputs (points 1..L, block k at
relative depth k / L) and the final norm (point n - 1). Two models are compared at the points of the shallower
one: embedding to embedding, final norm to final norm, and block k of L_s to block round(k L_d / L_s) of L_d,
the deeper model's block at the same fraction of its depth. With L_d >= L_s the matched blocks are distinct,
so no point of either model is used twice. (The cross-layer CKA map compares every point with every other,
for the matches this rule does not assume; Kornblith et al. 2019, fig. 5.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float, Int


def matched_point(j: int, m: int, n: int) -> int:
    """The point of an n-point model at the relative depth of point j of an m-point model (m <= n)."""
    if j == 0 or m == n:
        return j
    if j == m - 1:
        return n - 1
    return int(min(max(np.floor(j * (n - 2) / (m - 2) + 0.5), 1), n - 2))  # round half up: no banker's rounding


def depth_matches(n_points: Sequence[int]) -> Int[np.ndarray, "rows models"]:
    """Rows of matched points, one column per model: every point of the shallowest model and, in each other
    model, the point at its relative depth. Equal depths give the identity (row i = point i everywhere)."""
    m = min(n_points)
    return np.array([[matched_point(j, m, n) for n in n_points] for j in range(m)], dtype=np.int64)


def positions_on(n: int, n_ref: int) -> Float[np.ndarray, " n"]:
    """Where each point of an n-point model sits on an n_ref-point model's axis of residual points: the
    embedding at 0, block k of L at k L_ref / L, the final norm at n_ref - 1 (so one depth axis holds both)."""
    blocks, ref_blocks = max(n - 2, 1), n_ref - 2
    return np.array([0.0, *(k * ref_blocks / blocks for k in range(1, n - 1)), n_ref - 1.0])
