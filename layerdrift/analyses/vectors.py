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


def split_half_cosines(
    differences: dict[str, Float[np.ndarray, "l n d"]], n_splits: int, seed: int = 0
) -> tuple[dict[str, Float[np.ndarray, "s l"]], dict[tuple[str, str], Float[np.ndarray, "s l"]]]:
    """How similar two behaviour vectors of the *same* model are, made from disjoint halves of the items.

    ``differences`` holds each variant's per-item (matching - non-matching) activations, the same items in the same
    order. Each split shuffles the items once and halves them (the same halves for every variant). Within a variant:
    cos(v_A, v_B), its split-half reliability. Between variants a and b: the mean of cos(a_A, b_B) and cos(a_B, b_A),
    so between and within are read at the same number of items; a between-variant cosine below the within-variant
    band is a direction the change moved more than resampling the items does.
    """
    rng = np.random.default_rng(seed)
    n = next(iter(differences.values())).shape[1]
    orders = [rng.permutation(n) for _ in range(n_splits)]
    halves = {
        v: np.stack([_unit_or_nan(d[:, o[: n // 2]].mean(axis=1)) for o in orders]) for v, d in differences.items()
    }  # (s, l, d) unit vectors of half A ...
    others = {
        v: np.stack([_unit_or_nan(d[:, o[n // 2 :]].mean(axis=1)) for o in orders]) for v, d in differences.items()
    }  # ... and of half B
    within = {v: np.einsum("sld,sld->sl", halves[v], others[v]) for v in differences}
    names = list(differences)
    between = {
        (a, b): 0.5 * (np.einsum("sld,sld->sl", halves[a], others[b]) + np.einsum("sld,sld->sl", others[a], halves[b]))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    return within, between
