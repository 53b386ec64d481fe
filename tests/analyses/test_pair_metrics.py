"""The pair-metric registry: known cases, summaries against a plain reference, and a new metric reaching the
layers table and the depth figures through one registry entry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from layerdrift.analyses import pair_metrics
from layerdrift.analyses.pair_metrics import CKA, DRIFT, JACCARD, PAIR_METRICS, PairMetric, PairStacks
from layerdrift.analyses.similarity import cka_matrix
from layerdrift.analyses.uncertainty import bootstrap_mean_ci


def stacks(a: np.ndarray, b: np.ndarray, align: bool = False) -> PairStacks:
    cka = (np.diag(cka_matrix(a, b)), np.diag(cka_matrix(a, b, debiased=True)))
    return PairStacks(a, b, cka, k=5, align=align)


@pytest.fixture()
def cloud() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 40, 16))


def test_identical_stacks_do_not_differ(cloud):
    p = stacks(cloud, cloud.copy())
    values = {m.name: m.values(p) for m in PAIR_METRICS}
    np.testing.assert_allclose(values["drift"], 0.0, atol=1e-12)
    np.testing.assert_array_equal(values["jaccard"], 1.0)
    np.testing.assert_allclose(values["cka"], 1.0, atol=1e-12)
    np.testing.assert_allclose(values["cka_debiased"], 1.0, atol=1e-12)


def test_a_rotation_moves_every_vector_but_keeps_the_geometry(cloud):
    rotated = cloud @ ortho_group.rvs(16, random_state=1)
    p = stacks(cloud, rotated)
    assert DRIFT.values(p).mean() > 0.5  # each concept's vector points elsewhere
    np.testing.assert_array_equal(JACCARD.values(p), 1.0)  # cosine neighbours survive a rotation
    np.testing.assert_allclose(CKA.values(p), 1.0, atol=1e-10)


def test_drift_across_widths_needs_alignment(cloud):
    wider = np.concatenate([cloud, np.zeros((3, 40, 4))], axis=2)  # same geometry in 20 dimensions
    assert DRIFT.values(stacks(cloud, wider)) is None
    np.testing.assert_allclose(DRIFT.values(stacks(cloud, wider, align=True)), 0.0, atol=1e-10)


def test_summary_columns_agree_with_plain_numpy(cloud):
    values = DRIFT.values(stacks(cloud, cloud + np.random.default_rng(2).normal(scale=0.3, size=cloud.shape)))
    cols = DRIFT.summary(values, n_boot=200, seed=3)
    assert list(cols) == ["drift_mean", "drift_std", "drift_median", "drift_ci_low", "drift_ci_high"]
    low, high = bootstrap_mean_ci(values.T, n_boot=200, seed=3)
    for i, row in enumerate(values):
        assert cols["drift_mean"][i] == pytest.approx(sum(row) / len(row), rel=1e-12)
        assert cols["drift_std"][i] == pytest.approx(np.sqrt(((row - row.mean()) ** 2).sum() / (len(row) - 1)))
        ordered = sorted(row)  # 40 concepts: the median is the mean of the middle two
        assert cols["drift_median"][i] == pytest.approx((ordered[19] + ordered[20]) / 2, rel=1e-12)
        assert cols["drift_ci_low"][i] == low[i] and cols["drift_ci_high"][i] == high[i]
    assert CKA.summary(np.array([0.5, 0.25]), 10, 0) == {"cka": [0.5, 0.25]}


def test_a_registered_metric_reaches_the_layers_table_and_its_figure(tiny_run, monkeypatch):
    from layerdrift.dashboards import drift as drift_figures
    from layerdrift.workbench.config import AnalysisSpec
    from layerdrift.workbench.experiments import drift as drift_experiment

    norm_ratio = PairMetric(
        "norm_ratio",
        "Norm ratio per layer (k = {k})",
        "|b| / |a|",
        lambda p: np.linalg.norm(p.b, axis=-1) / np.linalg.norm(p.a, axis=-1),
        per_concept=True,
        more_change="higher",
        needs_spread=False,  # defined at the embedding too, where every prompt shares one vector
    )
    registry = (*PAIR_METRICS, norm_ratio)
    for module in (pair_metrics, drift_experiment, drift_figures):
        monkeypatch.setattr(module, "PAIR_METRICS", registry)
    spec = AnalysisSpec(k=3, n_boot=100, n_perm=100, umap_neighbors=4, png=False, umap_layers="headline")
    out = drift_experiment.analyze(tiny_run.store, spec)
    layers, store, ps = out.tables["layers"], tiny_run.store, out.meta["prompt_set"]
    first = layers.iloc[0]
    a, b = (store.activations(v, ps, store.residual_points(v, ps)[0], "last").astype(float) for v in first[["a", "b"]])
    assert first["norm_ratio_mean"] == pytest.approx((np.linalg.norm(b, axis=1) / np.linalg.norm(a, axis=1)).mean())
    assert first["label"] == "embed" and np.isnan(first["drift_mean"])  # drift needs the prompts to vary
    assert {"norm_ratio_ci_low", "norm_ratio_ci_high"} <= set(layers.columns)

    figs = drift_figures.depth_figures(out.tables, out.meta, [p["label"] for p in out.meta["pairs"]])
    fig = figs["norm_ratio_by_layer"]
    assert fig.layout.title.text == "Norm ratio per layer (k = 3)"
    assert fig.layout.yaxis.title.text == "|b| / |a|"
    assert {t.name for t in fig.data} >= {p["label"] for p in out.meta["pairs"] if not p["floor"]}
