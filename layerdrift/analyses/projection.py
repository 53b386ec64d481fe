"""Joint 2-D maps of several variants at one layer: UMAP (cosine) and PCA, one fit on the stack.

Maps that carry over from layer to layer (``analysis.map_alignment = "layers"``) so a reader can follow a concept
through depth:

- PCA: each layer's own top-2 plane, rotated or reflected to best match the previous layer's coordinates
  (orthogonal Procrustes, Schönemann 1966). Distances and the explained variance are unchanged.
- UMAP: each layer's fit starts from the previous layer's layout (a warm start, as for UMAP on sequences of
  graphs) and refines it with a shorter, gentler optimisation (``WARM_EPOCHS`` epochs at ``WARM_LEARNING_RATE``).
  Then it is rotated, reflected, translated and uniformly scaled onto the previous layout (full Procrustes
  analysis, Gower 1975): umap-learn rescales every start to a box of side 10, and UMAP's scale carries no meaning,
  so the scale is the previous layer's and only the shape changes from layer to layer. Its neighbourhoods come
  from the layer's own data as before; only the start differs. AlignedUMAP (umap-learn) was measured too: on the
  default run it moves points less (0.07 of the spread against 0.16) but takes 16x as long (219 s against 13.5 s)
  and keeps fewer neighbours (0.509 against 0.520).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from layerdrift.analyses.drift import l2_normalize

MAPS_VERSION = 2  # bumped when a fit's numbers change (2: 100 warm epochs, scaled alignment, PCA by eigh): cached
# maps of an older version are fitted again
WARM_EPOCHS = 100
WARM_LEARNING_RATE = 0.3
EXACT_NEIGHBOURS_BELOW = 4096  # umap-learn's own switch: below it, exact neighbours from all pairwise distances


def cosine_distances(x: Float[np.ndarray, "m d"]) -> Float[np.ndarray, "m m"]:
    """umap-learn's cosine distance (1 - cos; 0 between two zero vectors, 1 between a zero vector and another) of
    every pair of rows, exactly as umap-learn computes it below ``EXACT_NEIGHBOURS_BELOW`` rows."""
    from layerdrift.analyses.cosine_kernel import pairwise_cosine

    return pairwise_cosine(np.ascontiguousarray(x))


def joint_umap(
    xs: Sequence[Float[np.ndarray, "n d"]],
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    start: Float[np.ndarray, "v n 2"] | None = None,
) -> Float[np.ndarray, "v n 2"]:
    """One UMAP fit (cosine metric) on all variants stacked, so coordinates are shared across variants; with
    ``start`` (the previous layer's map), a warm start from it, moved and scaled onto it (UMAP's scale means
    nothing: it rescales every start to a box of side 10)."""
    import umap

    stacked = np.concatenate([np.asarray(x, dtype=np.float32) for x in xs])
    warm = {} if start is None else {"n_epochs": WARM_EPOCHS, "learning_rate": WARM_LEARNING_RATE}
    # below umap-learn's exact-neighbour size, the distances it would compute pair by pair through a Python loop
    # (sklearn with a callable metric: most of a map's time), as one matrix product; the same exact neighbours
    exact = len(stacked) < EXACT_NEIGHBOURS_BELOW
    reducer = umap.UMAP(
        n_components=2,
        metric="precomputed" if exact else "cosine",
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
        init="spectral" if start is None else start.reshape(-1, 2).astype(np.float64),
        **warm,
    )
    with warnings.catch_warnings():  # "inverse_transform will be unavailable": never used here
        warnings.filterwarnings("ignore", message="using precomputed metric", category=UserWarning)
        coords = reducer.fit_transform(cosine_distances(stacked) if exact else stacked)
    if start is not None:
        coords = similar_onto(coords, start.reshape(-1, 2))
    return coords.reshape(len(xs), -1, 2)


def procrustes_rotation(source: Float[np.ndarray, "m c"], target: Float[np.ndarray, "m c"]) -> Float[np.ndarray, "c c"]:
    """The orthogonal R minimising ||source R - target||_F: R = U V^T for source^T target = U S V^T."""
    u, _, vt = np.linalg.svd(source.T @ target)
    return u @ vt


def similar_onto(coords: Float[np.ndarray, "m c"], target: Float[np.ndarray, "m c"]) -> Float[np.ndarray, "m c"]:
    """``coords`` rotated, reflected, uniformly scaled and translated to best match ``target`` row for row (full
    Procrustes analysis: R from the SVD of centred^T target = U S V^T, scale = tr S / ||centred||^2)."""
    centred, target_mean = coords - coords.mean(axis=0), target.mean(axis=0)
    u, sv, vt = np.linalg.svd(centred.T @ (target - target_mean))
    scale = sv.sum() / np.sum(centred**2)
    return scale * centred @ (u @ vt) + target_mean


def pca(x: Float[np.ndarray, "m d"], n_components: int = 2) -> tuple[Float[np.ndarray, "m c"], Float[np.ndarray, " c"]]:
    """PCA coordinates (sign fixed so the largest loading is positive) and explained-variance ratios.

    With at least as many points as dimensions, the loadings are the top eigenvectors of C^T C (C = x centred; the
    V of C = U S V^T, its eigenvalues S^2) and the ratios S^2 / ||C||_F^2: only the components asked for are
    computed, not the whole SVD (4x faster for a 940 x 576 map). Otherwise the SVD of C.
    """
    centred = x - x.mean(axis=0, keepdims=True)
    m, d = centred.shape
    if d <= m:
        import scipy.linalg

        eig, vecs = scipy.linalg.eigh(centred.T @ centred, subset_by_index=[d - n_components, d - 1], driver="evr")
        top, loadings = eig[::-1], vecs[:, ::-1].T
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        top, loadings = s[:n_components] ** 2, vt[:n_components]
    signs = np.sign(loadings[np.arange(n_components), np.argmax(np.abs(loadings), axis=1)])
    return centred @ (loadings.T * signs), top / np.sum(centred**2)


def joint_pca(
    xs: Sequence[Float[np.ndarray, "n d"]], n_components: int = 2, start: Float[np.ndarray, "v n c"] | None = None
) -> tuple[Float[np.ndarray, "v n c"], Float[np.ndarray, " c"]]:
    """PCA of the L2-normalised, stacked variants; returns coordinates and explained-variance ratios. With ``start``
    (the previous layer's map) the coordinates are rotated or reflected onto it (both are centred)."""
    coords, ratio = pca(l2_normalize(np.concatenate(xs)), n_components)
    if start is not None:
        coords = coords @ procrustes_rotation(coords, start.reshape(-1, n_components))
    return coords.reshape(len(xs), -1, n_components), ratio
