"""Layer-aligned maps: PCA alignment is a rotation or reflection (distances and explained variance exactly kept),
UMAP's warm start is reproducible and follows a slowly changing sequence far more closely than independent fits,
and ``map_alignment = "none"`` gives the independent per-layer fits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from layerdrift.analyses.projection import (
    cosine_distances,
    joint_pca,
    joint_umap,
    pca,
    procrustes_rotation,
    similar_onto,
)


def layers_drifting(n_layers: int = 3, n: int = 60, d: int = 24, step: float = 0.05, seed: int = 0):
    """Two variants' points in 4 clusters, each layer a small random change of the one before."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 3
    base = centres[np.arange(n) % 4] + rng.normal(size=(n, d))
    out, x = [], base
    for _ in range(n_layers):
        out.append([x, x + 0.1 * rng.normal(size=x.shape)])
        x = x + step * rng.normal(size=x.shape) @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    return out


VARIANTS = ("base", "tuned")


def jump(a: np.ndarray, b: np.ndarray) -> float:
    """Mean displacement of variant 0's points between two maps, over the later map's RMS spread."""
    pa, pb = a[0], b[0]
    return float(np.linalg.norm(pb - pa, axis=1).mean() / np.sqrt(((pb - pb.mean(0)) ** 2).sum(1).mean()))


def pairwise(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1, x.shape[-1])
    return np.linalg.norm(flat[:, None] - flat[None], axis=-1)


def test_distances_and_maps_are_umap_learns_own_bit_for_bit():
    """The compiled pairwise loop gives exactly what umap-learn gets from sklearn's loop over its cosine (zero rows
    included), so a map is exactly umap-learn's cosine UMAP, only faster."""
    import umap
    from sklearn.metrics import pairwise_distances
    from umap.distances import cosine

    xs = layers_drifting(n_layers=1)[0]
    stacked = np.concatenate(xs).astype(np.float32)
    stacked[[3, 7]] = 0.0  # two zero vectors: 0 between them, 1 to every other
    d = cosine_distances(stacked)
    np.testing.assert_array_equal(d, pairwise_distances(stacked, metric=cosine))
    assert d[3, 7] == 0.0 and d[3, 5] == 1.0
    reference = umap.UMAP(n_components=2, metric="cosine", n_neighbors=8, random_state=0, n_jobs=1)
    np.testing.assert_array_equal(
        joint_umap(xs, seed=0, n_neighbors=8).reshape(-1, 2), reference.fit_transform(np.concatenate(xs))
    )


def test_procrustes_recovers_a_planted_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    turn = np.array([[0.0, -1.0], [1.0, 0.0]]) @ np.diag([1.0, -1.0])
    np.testing.assert_allclose(procrustes_rotation(x @ turn, x), turn.T, atol=1e-12)
    np.testing.assert_allclose(similar_onto(2.5 * x @ turn + 5.0, x), x, atol=1e-12)


def test_pca_alignment_keeps_distances_and_explained_variance_and_only_brings_the_map_closer():
    first, second = layers_drifting()[:2]
    start, _ = joint_pca(first)
    free, ratio_free = joint_pca(second)
    aligned, ratio_aligned = joint_pca(second, start=start)
    np.testing.assert_array_equal(ratio_aligned, ratio_free)
    np.testing.assert_allclose(pairwise(aligned), pairwise(free), atol=1e-12)
    q = procrustes_rotation(free.reshape(-1, 2), aligned.reshape(-1, 2))
    np.testing.assert_allclose(q @ q.T, np.eye(2), atol=1e-12)
    assert np.linalg.norm(aligned - start) <= np.linalg.norm(free @ np.diag([1, -1]) - start) + 1e-12
    assert np.linalg.norm(aligned - start) <= np.linalg.norm(free - start) + 1e-12


def test_pca_alignment_undoes_a_rotation_of_the_whole_space():
    first = layers_drifting()[0]
    q = np.linalg.qr(np.random.default_rng(2).normal(size=(24, 24)))[0]
    start, _ = joint_pca(first)
    aligned, _ = joint_pca([x @ q for x in first], start=start)
    np.testing.assert_allclose(aligned, start, atol=1e-9)


def test_warm_started_umap_is_reproducible_and_follows_the_sequence():
    layers = layers_drifting(n_layers=3)
    free = [joint_umap(xs, seed=0, n_neighbors=8) for xs in layers]
    chained = [free[0]]
    for xs in layers[1:]:
        chained.append(joint_umap(xs, seed=0, n_neighbors=8, start=chained[-1]))
    again = joint_umap(layers[1], seed=0, n_neighbors=8, start=chained[0])
    np.testing.assert_array_equal(again, chained[1])
    free_jumps = [jump(a, b) for a, b in itertools.pairwise(free)]
    aligned_jumps = [jump(a, b) for a, b in itertools.pairwise(chained)]
    assert np.mean(aligned_jumps) < 0.5 * np.mean(free_jumps), (aligned_jumps, free_jumps)


@pytest.mark.parametrize("alignment", ["none", "layers"])
def test_the_pipeline_maps_are_the_per_layer_fits_or_their_chain(alignment, tiny_model, tiny_model_b, tmp_path):
    """The projections table holds exactly independent fits (``none``) or the chain of warm starts (``layers``)."""
    from conftest import VOCAB_TEXT, make_config

    from layerdrift import run

    vocab = tmp_path / "vocab.tsv"
    vocab.write_text(VOCAB_TEXT, encoding="utf-8")
    config = make_config(
        tmp_path / "run",
        {"base": tiny_model, "tuned": tiny_model_b},
        vocab,
        analysis={"umap_layers": [1, 2, 3], "map_alignment": alignment},
    )
    result = run(config, quiet=True)
    table, store = result.tables["projections"], result.store
    xs = {layer: [store.layer(v, "concepts", layer) for v in VARIANTS] for layer in (1, 2, 3)}

    def stored(layer: int, method: str) -> np.ndarray:
        rows = table[(table["layer"] == layer) & (table["method"] == method)]
        return np.stack([rows[rows["variant"] == v].sort_values("concept")[["x", "y"]].to_numpy() for v in VARIANTS])

    for layer in (1, 2, 3):
        chained = alignment == "layers" and layer > 1
        umap_start, pca_start = (stored(layer - 1, "umap"), stored(layer - 1, "pca")) if chained else (None, None)
        want = {
            "umap": joint_umap(xs[layer], seed=0, n_neighbors=4, start=umap_start),
            "pca": joint_pca(xs[layer], start=pca_start)[0],
        }
        for method, coords in want.items():
            got = stored(layer, method)
            np.testing.assert_allclose(got, coords, rtol=0, atol=1e-5, err_msg=f"{alignment} {method} {layer}")


@pytest.mark.parametrize("shape", [(120, 24), (10, 24)])
def test_pca_is_the_svds_top_components(shape):
    """The top eigenvectors of C^T C (or the SVD when there are fewer points than dimensions) give the SVD's
    coordinates and explained-variance ratios."""
    x = np.random.default_rng(3).normal(size=shape) * np.linspace(3.0, 0.1, shape[1])
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords, ratio = pca(x)
    np.testing.assert_allclose(ratio, s[:2] ** 2 / np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(np.abs(coords), np.abs(u[:, :2] * s[:2]), atol=1e-10)
    loadings = centred.T @ coords / np.sum(coords**2, axis=0)
    assert all(col[np.argmax(np.abs(col))] > 0 for col in loadings.T)  # the largest loading is positive


def test_cached_maps_of_an_older_fit_version_are_not_reused(tiny_run, monkeypatch):
    """A layer's cached maps are keyed by the fits' version: after a change to the fits, they are fitted again."""
    from layerdrift.workbench.config import AnalysisSpec
    from layerdrift.workbench.experiments import drift

    store, spec = tiny_run.store, AnalysisSpec()
    ps = store.prompt_sets[0]
    now = drift.projection_key(store, ps, spec, 0, [0, 1])
    monkeypatch.setattr(drift, "MAPS_VERSION", drift.MAPS_VERSION + 1)
    assert drift.projection_key(store, ps, spec, 0, [0, 1]) != now
