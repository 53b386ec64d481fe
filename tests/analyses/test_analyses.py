"""Each metric against a slow, obviously-correct reference (loops, explicit centering) and on invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group

from layerdrift.analyses import similarity
from layerdrift.analyses.drift import cosine_drift, drift_by_layer, percentile_rank, procrustes_align
from layerdrift.analyses.neighbours import knn_indices, knn_jaccard, neighbour_list
from layerdrift.analyses.similarity import cka_matrix, linear_cka
from layerdrift.analyses.spectrum import effective_ranks
from layerdrift.analyses.uncertainty import bootstrap_mean_ci, category_permutation_test
from layerdrift.errors import LayerdriftError

rng = np.random.default_rng(0)


def slow_cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / math.sqrt(sum(a * a for a in u)) / math.sqrt(sum(b * b for b in v))


def test_cosine_drift_matches_loop():
    a, b = rng.normal(size=(20, 7)), rng.normal(size=(20, 7))
    ref = [1 - slow_cos(a[i], b[i]) for i in range(20)]
    np.testing.assert_allclose(cosine_drift(a, b), ref, atol=1e-12)
    assert np.allclose(cosine_drift(a, a), 0, atol=1e-12)
    assert np.allclose(cosine_drift(a, 3.0 * a), 0, atol=1e-12)  # scale-free
    stack_a, stack_b = rng.normal(size=(3, 20, 7)), rng.normal(size=(3, 20, 7))
    np.testing.assert_allclose(drift_by_layer(stack_a, stack_b)[1], cosine_drift(stack_a[1], stack_b[1]), atol=1e-12)


def test_cosine_drift_refuses_different_widths():
    with pytest.raises(LayerdriftError, match="576 and 640 dimensions.*procrustes"):
        cosine_drift(np.ones((3, 576)), np.ones((3, 640)))


def test_procrustes_recovers_rotation_across_widths():
    a = rng.normal(size=(50, 6))
    q = ortho_group.rvs(9, random_state=1)[:6]  # 6 -> 9 isometry
    b = a @ q
    assert np.allclose(cosine_drift(procrustes_align(a, b), b), 0, atol=1e-10)


def test_percentile_rank_matches_loop():
    v = rng.integers(0, 5, size=30).astype(float)
    ref = [100 * sum(w <= x for w in v) / len(v) for x in v]
    np.testing.assert_allclose(percentile_rank(v), ref)


def slow_knn(x, k):
    out = []
    for i in range(len(x)):
        sims = sorted((-slow_cos(x[i], x[j]), j) for j in range(len(x)) if j != i)
        out.append([j for _, j in sims[:k]])
    return np.array(out)


def test_knn_and_jaccard_match_loops():
    a, b = rng.normal(size=(25, 5)), rng.normal(size=(25, 8))
    np.testing.assert_array_equal(knn_indices(a, 4), slow_knn(a, 4))
    na, nb = slow_knn(a, 4), slow_knn(b, 4)
    ref = [len(set(na[i]) & set(nb[i])) / len(set(na[i]) | set(nb[i])) for i in range(25)]
    np.testing.assert_allclose(knn_jaccard(a, b, 4), ref, atol=1e-12)
    assert np.all(knn_jaccard(a, a, 4) == 1.0)
    nl = neighbour_list(a, 3, 4)
    assert [j for j, _ in nl] == list(na[3]) and math.isclose(nl[0][1], slow_cos(a[3], a[na[3][0]]), abs_tol=1e-12)


def slow_cka_biased(x, y):
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    hsic = lambda p, q: np.trace(p @ q) / (n - 1) ** 2
    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


def slow_hsic_unbiased(k, l):
    """Song et al. (2012), eq. (5): the unbiased HSIC estimator, term by term."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def slow_cka_debiased(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l = xc @ xc.T, yc @ yc.T
    return slow_hsic_unbiased(k, l) / math.sqrt(slow_hsic_unbiased(k, k) * slow_hsic_unbiased(l, l))


def test_cka_matches_explicit_centering_and_song_estimator():
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(40, 9))
    assert abs(linear_cka(x, y) - slow_cka_biased(x, y)) < 1e-6
    assert abs(linear_cka(x, y, debiased=True) - slow_cka_debiased(x, y)) < 1e-6
    # the align-drift feature-space formula ||Y^T X||^2 / (||X^T X|| ||Y^T Y||)
    xc, yc = x - x.mean(0), y - y.mean(0)
    feat = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert abs(linear_cka(x, y) - feat) < 1e-9


@pytest.mark.parametrize("block_elements", [2**23, 4 * 30 * 7, 1])  # one block; 7 Gram rows; one row at a time
def test_cka_matrix_equals_per_pair_reference(monkeypatch, block_elements):
    monkeypatch.setattr(similarity, "BLOCK_ELEMENTS", block_elements)
    xs = [rng.normal(size=(30, 5)) + 3.0 for _ in range(4)]  # off-centre: the centring is folded into the blocks
    ys = [x @ rng.normal(size=(5, 7)) + rng.normal(size=(30, 7)) for x in xs[:3]]
    for debiased in (False, True):
        slow = slow_cka_debiased if debiased else slow_cka_biased
        ref = np.array([[slow(x, y) for y in ys] for x in xs])
        np.testing.assert_allclose(cka_matrix(xs, ys, debiased), ref, atol=1e-10)
        self_ref = np.array([[slow(x, y) for y in xs] for x in xs])
        np.testing.assert_allclose(cka_matrix(xs, None, debiased), self_ref, atol=1e-10)


def test_cka_of_constant_and_nearly_constant_representations():
    """A representation that does not vary has no CKA (NaN, as 0/0); one with a mean far above its spread (the
    residual stream's large constant directions) still agrees with explicit centring."""
    x = rng.normal(size=(50, 6))
    constant = np.tile(rng.normal(size=(1, 6)), (50, 1))
    assert np.isnan(cka_matrix([constant, x], [x])[0, 0]) and not np.isnan(cka_matrix([constant, x], [x])[1, 0])
    for offset in (1e2, 1e5):  # relative spread about 1e-2 (folded centring) and 1e-5 (explicit centring)
        far = x + offset
        y = far @ rng.normal(size=(6, 6)) + rng.normal(size=(50, 6))
        for debiased in (False, True):
            slow = (slow_cka_debiased if debiased else slow_cka_biased)(far, y)
            assert abs(cka_matrix([far], [y], debiased)[0, 0] - slow) < 1e-6, (offset, debiased)


def test_cka_invariants():
    x = rng.normal(size=(60, 8))
    q = ortho_group.rvs(8, random_state=3)
    for debiased in (False, True):
        assert abs(linear_cka(x, x, debiased) - 1) < 1e-10
        assert abs(linear_cka(x, 2.5 * x @ q, debiased) - 1) < 1e-10  # rotation + isotropic scaling
    y = rng.normal(size=(60, 8))
    assert abs(linear_cka(x, y) - linear_cka(x @ q * 0.1, y)) < 1e-10
    assert np.isnan(linear_cka(np.ones((10, 3)), x[:10]))  # constant representation: undefined


def test_debiased_cka_near_zero_for_independent_data():
    x, y = rng.normal(size=(200, 100)), rng.normal(size=(200, 100))
    biased, debiased = linear_cka(x, y), linear_cka(x, y, debiased=True)
    assert biased > 0.3  # the biased estimator is inflated for n ~ d
    assert abs(debiased) < 0.05


def slow_effective_ranks(x):
    xc = x - x.mean(0)
    s = np.linalg.svd(xc, compute_uv=False)
    p = [v / sum(s) for v in s if v > s.max() * 1e-12]
    return {
        "rankme": math.exp(-sum(q * math.log(q) for q in p)),
        "renyi_0.5": math.exp(math.log(sum(q**0.5 for q in p)) / 0.5),
        "renyi_2": math.exp(math.log(sum(q**2 for q in p)) / -1.0),
        "renyi_inf": 1 / max(p),
    }


def test_effective_ranks_match_formula_and_isotropic_limit():
    x = rng.normal(size=(50, 10)) * np.linspace(0.1, 3, 10)
    got, ref = effective_ranks(x), slow_effective_ranks(x)
    for key in ref:
        assert abs(got[key] - ref[key]) < 1e-6
    iso = effective_ranks(rng.normal(size=(20000, 16)))
    assert 15.5 < iso["rankme"] <= 16 and 15.0 < iso["renyi_inf"] <= 16
    low = effective_ranks(rng.normal(size=(500, 3)) @ rng.normal(size=(3, 16)))
    assert low["rankme"] < 3.01
    assert math.isnan(effective_ranks(np.ones((5, 4)))["rankme"])


def test_bootstrap_and_permutation():
    v = rng.normal(1.0, 0.1, size=200)
    lo, hi = bootstrap_mean_ci(v, n_boot=2000, seed=0)
    assert lo < v.mean() < hi and hi - lo < 0.05
    curve = np.stack([v, v + 1], axis=1)
    clo, _chi = bootstrap_mean_ci(curve, n_boot=2000, seed=0)
    np.testing.assert_allclose(clo, [lo, lo + 1], atol=1e-12)  # same resamples along the curve
    cats = ["a"] * 50 + ["b"] * 50 + ["c"] * 50
    planted = np.concatenate([rng.normal(0, 1, 50), rng.normal(0, 1, 50), rng.normal(1.2, 1, 50)])
    res = category_permutation_test(planted, cats, n_perm=2000, seed=0)
    assert res["p_omnibus"] < 0.01 and res["p_vs_rest"]["c"] < 0.01 and res["diff_vs_rest"]["c"] > 0
    null = category_permutation_test(rng.normal(0, 1, 150), cats, n_perm=2000, seed=0)
    assert null["p_omnibus"] > 0.05


def test_joint_umap_is_reproducible():
    from layerdrift.analyses.projection import joint_pca, joint_umap

    xs = [rng.normal(size=(40, 6)), rng.normal(size=(40, 6))]
    a, b = joint_umap(xs, seed=3, n_neighbors=5), joint_umap(xs, seed=3, n_neighbors=5)
    assert a.shape == (2, 40, 2)
    np.testing.assert_array_equal(a, b)
    p1, r1 = joint_pca(xs)
    p2, _ = joint_pca(xs)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (2, 40, 2) and 0 < r1[1] <= r1[0] < 1
