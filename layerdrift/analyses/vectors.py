"""Behaviour (steering) vectors compared across variants and layers (contrastive activation addition).

A behaviour vector at layer l is the mean over items of (activation with the matching answer -
activation with the non-matching answer) at the answer-letter token (Rimsky et al. 2024).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from layerdrift.analyses.projection import pca


def contrast_vectors(
    matching: Float[np.ndarray, "l n d"], non_matching: Float[np.ndarray, "l n d"]
) -> Float[np.ndarray, "l d"]:
    """Per layer: mean over items of (matching - non-matching) activations."""
    return np.mean(np.asarray(matching, np.float64) - np.asarray(non_matching, np.float64), axis=1)


def _unit_or_nan(x: Float[np.ndarray, "l d"]) -> Float[np.ndarray, "l d"]:
    """Rows scaled to unit length; a zero row (no direction, e.g. balanced letters at the embedding) becomes NaN."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12, x / norm, np.nan)


def layerwise_cosine(a: Float[np.ndarray, "l d"], b: Float[np.ndarray, "l d"]) -> Float[np.ndarray, " l"]:
    """cos(a_l, b_l) for every layer: how far a behaviour direction moved between two variants (NaN for a zero
    vector)."""
    return np.einsum("ld,ld->l", _unit_or_nan(a), _unit_or_nan(b))


def cross_layer_cosine(
    a: Float[np.ndarray, "la d"], b: Float[np.ndarray, "lb d"] | None = None
) -> Float[np.ndarray, "la lb"]:
    """cos(a_i, b_j) for every pair of layers (b defaults to a: a variant's own layer-to-layer map; NaN for zero
    vectors).
    """
    an = _unit_or_nan(a)
    return an @ (an if b is None else _unit_or_nan(b)).T


def vector_pca(
    vectors: dict[str, Float[np.ndarray, "l d"]], n_components: int = 2
) -> tuple[dict[str, Float[np.ndarray, "l c"]], Float[np.ndarray, " c"]]:
    """PCA of L2-normalised vectors of every (variant, layer), fitted jointly; zero vectors are left out (NaN
    coordinates).
    """
    names = list(vectors)
    stacked = np.concatenate([_unit_or_nan(vectors[n]) for n in names])
    keep = np.isfinite(stacked).all(axis=1)
    coords = np.full((len(stacked), n_components), np.nan)
    coords[keep], ratio = pca(stacked[keep], n_components)
    sizes = np.cumsum([0] + [vectors[n].shape[0] for n in names])
    return {n: coords[sizes[i] : sizes[i + 1]] for i, n in enumerate(names)}, ratio
