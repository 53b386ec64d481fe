"""Effective rank from the singular values of the centred matrix (RankMe and Rényi ranks)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float


def singular_distribution(x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, " r"]:
    """p = s / sum(s) over the singular values of the column-centred matrix."""
    xc = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0, keepdims=True)
    s = np.linalg.svd(xc, compute_uv=False)
    return s[s > s.max() * 1e-12] / s.sum() if s.max() > 0 else np.zeros(0)


def effective_ranks(x: Float[np.ndarray, "n d"], alphas: tuple[float, ...] = (0.5, 2.0, np.inf)) -> dict[str, float]:
    """RankMe exp(-sum p log p) (Garrido et al. 2023) and Rényi ranks exp(log(sum p^a) / (1 - a))."""
    p = singular_distribution(x)
    if p.size == 0:  # all rows identical (e.g. the embedding of one shared last token): no spectrum
        return {"rankme": float("nan"), **{_renyi_name(a): float("nan") for a in alphas}}
    out = {"rankme": float(np.exp(-np.sum(p * np.log(p))))}
    for a in alphas:
        if np.isinf(a):
            out[_renyi_name(a)] = float(1.0 / p.max())
        else:
            out[_renyi_name(a)] = float(np.exp(np.log(np.sum(p**a)) / (1.0 - a)))
    return out


def _renyi_name(alpha: float) -> str:
    return "renyi_inf" if np.isinf(alpha) else f"renyi_{alpha:g}"
