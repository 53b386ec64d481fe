"""Joint 2-D maps of several variants at one layer: UMAP (cosine) and PCA, one fit on the stack."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from layerdrift.analyses.drift import l2_normalize


def joint_umap(
    xs: Sequence[Float[np.ndarray, "n d"]], seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> Float[np.ndarray, "v n 2"]:
    """One UMAP fit (cosine metric) on all variants stacked, so coordinates are shared across variants."""
    import umap

    stacked = np.concatenate([np.asarray(x, dtype=np.float32) for x in xs])
    reducer = umap.UMAP(
        n_components=2,
        metric="cosine",
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
        init="spectral",
    )
    coords = reducer.fit_transform(stacked)
    return coords.reshape(len(xs), -1, 2)


def pca(x: Float[np.ndarray, "m d"], n_components: int = 2) -> tuple[Float[np.ndarray, "m c"], Float[np.ndarray, " c"]]:
    """PCA coordinates (sign fixed so the largest loading is positive) and explained-variance ratios."""
    centred = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(n_components), np.argmax(np.abs(vt[:n_components]), axis=1)])
    return centred @ (vt[:n_components].T * signs), (s**2 / np.sum(s**2))[:n_components]


def joint_pca(
    xs: Sequence[Float[np.ndarray, "n d"]], n_components: int = 2
) -> tuple[Float[np.ndarray, "v n c"], Float[np.ndarray, " c"]]:
    """PCA of the L2-normalised, stacked variants; returns coordinates and explained-variance ratios."""
    coords, ratio = pca(l2_normalize(np.concatenate(xs)), n_components)
    return coords.reshape(len(xs), -1, n_components), ratio
