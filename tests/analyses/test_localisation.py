"""Onset, break and half-way depth of depth curves: recovered on synthetic curves with a known step, and the resampled
CKA against its slow obvious definition."""

import numpy as np
import pytest

from layerdrift.analyses.localisation import (
    cka_curves,
    concept_onsets,
    floor_thresholds,
    locate,
    mean_curves,
    resamples,
)


def step_curves(n=80, points=12, step=5, height=1.0, noise=0.05, seed=0):
    """Per-prompt curves at floor level before ``step`` and ``height`` above it from ``step`` on, and their floor."""
    rng = np.random.default_rng(seed)
    floor = np.abs(rng.normal(0, noise, size=(n, points)))
    values = np.abs(rng.normal(0, noise, size=(n, points)))
    values[:, step:] += height
    return values, floor


def test_a_planted_step_is_the_onset_the_break_and_the_half_way_point():
    values, floor = step_curves(step=5)
    idx = resamples(len(values), 200, seed=0)
    row = locate(mean_curves(values, idx), floor_thresholds(floor, idx, values.shape[1]))
    assert (row["onset"], row["break"], row["half"]) == (5, 5, 5)
    assert (row["onset_low"], row["onset_high"]) == (5, 5)
    assert row["onset_defined"] == 1.0
    assert row["final"] == pytest.approx(values[:, -1].mean())


def test_a_gradual_rise_is_located_where_it_crosses():
    points = 11
    ramp = np.linspace(0, 1, points)  # rises by 0.1 a point...
    ramp[8:] += 0.3  # ...and by 0.4 into point 8: 0, .1, ..., .7, 1.1, 1.2, 1.3
    values = np.tile(ramp, (20, 1))
    floor = np.full((20, points), 0.25)  # crossed at point 3 (0.3 > 0.25)
    idx = resamples(20, 50, seed=1)
    row = locate(mean_curves(values, idx), floor_thresholds(floor, idx, points))
    assert (row["onset"], row["break"], row["half"]) == (3, 8, 7)  # half of 1.3 is first reached by 0.7
    assert row["onset_low"] == row["onset_high"] == 3  # no prompt differs from another: no uncertainty


def test_a_curve_under_its_floor_has_no_onset():
    values, floor = step_curves(height=0.0)
    idx = resamples(len(values), 100, seed=0)
    row = locate(mean_curves(values, idx), floor_thresholds(floor, idx, values.shape[1]))
    assert np.isnan(row["onset"]) and row["onset_defined"] < 0.05


def test_without_a_floor_the_first_nonzero_point_is_the_onset():
    values = np.zeros((10, 6))
    values[:, 2:] = 0.1
    idx = resamples(10, 20, seed=0)
    assert locate(mean_curves(values, idx), floor_thresholds(None, idx, 6))["onset"] == 2


def test_each_concept_has_its_own_onset():
    values = np.zeros((3, 6))
    values[0, 1:], values[1, 4:] = 1.0, 1.0
    floor = np.full((3, 6), 0.5)
    onsets = concept_onsets(values, floor)
    assert onsets[:2].tolist() == [1, 4] and np.isnan(onsets[2])


def slow_cka(x, y):
    """Linear CKA from explicitly centred Grams."""
    n = len(x)
    h = np.eye(n) - 1 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return (k * l).sum() / np.sqrt((k * k).sum() * (l * l).sum())


def test_resampled_cka_equals_cka_of_the_resampled_prompts():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 25, 7)), rng.normal(size=(3, 25, 5))
    b[1] = a[1][:, :5] + 0.1 * rng.normal(size=(25, 5))
    idx = resamples(25, 6, seed=2)
    got = cka_curves(a, b, idx)
    want = np.array([[1 - slow_cka(a[p][i], b[p][i]) for p in range(3)] for i in idx])
    np.testing.assert_allclose(got, want, atol=1e-12)
