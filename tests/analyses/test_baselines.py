"""Findings read against their baselines: category effects against the noise floor, degenerate points."""

from __future__ import annotations

import numpy as np
import pytest

from layerdrift.analyses.degenerate import degenerate_points, degenerate_reason, relative_spread
from layerdrift.analyses.drift import percentile_rank
from layerdrift.analyses.headline import category_rows, floor_log_ratio

CATS = ["geometry"] * 60 + ["real"] * 60 + ["plain"] * 120


def planted_drifts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A pair's drift and its floor's drift for 240 concepts.

    Every concept has a scale (how loosely it sits in the space), 4x for 'geometry': the floor and the change
    both move it more. Only 'real' concepts are moved 3x more by the change than their scale explains.
    """
    rng = np.random.default_rng(seed)
    scale = np.where(np.asarray(CATS) == "geometry", 4.0, 1.0)
    floor = 1e-3 * scale * rng.lognormal(0, 0.3, len(CATS))
    boost = np.where(np.asarray(CATS) == "real", 3.0, 1.0)
    drift = 0.05 * scale * boost * rng.lognormal(0, 0.3, len(CATS))
    return drift, floor


def rows_by_category(drift, floor, **kw):
    return {
        r["category"]: r for r in category_rows("a→b", drift, CATS, n_boot=200, n_perm=2000, seed=0, floor=floor, **kw)
    }


def test_a_category_effect_of_the_geometry_does_not_survive_the_floor():
    drift, floor = planted_drifts()
    rows = rows_by_category(drift, floor)
    geometry, real, plain = rows["geometry"], rows["real"], rows["plain"]
    # read alone, both categories drift more than the rest
    assert geometry["p_vs_rest"] < 0.01 and geometry["diff_vs_rest"] > 0
    assert real["p_vs_rest"] < 0.01 and real["diff_vs_rest"] > 0
    # the floor moves 'geometry' as much more as the pair does: no effect left in units of the floor
    assert geometry["verdict"] == "does not survive the floor"
    assert geometry["mean"] > 3 * plain["mean"] and abs(geometry["log_ratio_mean"] - plain["log_ratio_mean"]) < 0.15
    assert real["verdict"] == "survives the floor" and real["p_vs_rest_floor"] < 0.01
    assert real["log_ratio_diff_vs_rest"] > 0 and plain["verdict"] == "survives the floor"  # plain is below the rest
    # the log ratio's mean is the mean of log(d / f) over the category, by hand
    sel = np.asarray(CATS) == "real"
    assert real["log_ratio_mean"] == pytest.approx(np.mean(np.log(drift[sel] / floor[sel])), abs=1e-12)
    assert real["log_ratio_ci_low"] <= real["log_ratio_mean"] <= real["log_ratio_ci_high"]
    assert real["floor_mean"] == pytest.approx(floor[sel].mean(), abs=1e-15)
    # the floor pair read on its own shows the geometry effect: it is named as the floor's, not as a finding
    floor_rows = {r["category"]: r for r in category_rows("a→f", floor, CATS, 200, 2000, 0, is_floor_pair=True)}
    assert floor_rows["geometry"]["verdict"] == "significant in the floor itself"
    assert floor_rows["real"]["verdict"] in ("not significant", "significant in the floor itself")


def test_without_a_floor_findings_say_so():
    drift, _ = planted_drifts()
    rows = rows_by_category(drift, None)
    assert rows["real"]["verdict"] == "no floor to read against" and np.isnan(rows["real"]["p_vs_rest_floor"])


def test_floor_log_ratio_is_undefined_where_a_drift_is_zero():
    ratio = floor_log_ratio(np.array([0.2, 0.0, 0.1]), np.array([0.1, 0.1, 0.0]))
    assert ratio[0] == pytest.approx(np.log(2.0)) and np.isnan(ratio[1:]).all()


def test_degenerate_points_are_found_below_numerical_noise_only():
    rng = np.random.default_rng(0)
    shared = np.tile(rng.normal(size=64), (20, 1))
    stack = np.stack([shared, shared + 1e-9 * rng.normal(size=shared.shape), rng.normal(size=(20, 64)), 0 * shared])
    assert relative_spread(stack[0]) < 1e-15 and relative_spread(stack[3]) == 0.0  # the mean rounds
    assert degenerate_points(stack).tolist() == [True, True, False, True]
    # a real but small spread (1e-3 of the norm, far above float32 rounding) is not degenerate
    assert not degenerate_points((shared + 1e-3 * rng.normal(size=shared.shape))[None])[0]
    assert "ends in the token ' is'" in degenerate_reason("embed", " is")


def test_percentile_rank_leaves_undefined_values_out():
    assert percentile_rank(np.array([0.3, np.nan, 0.1, 0.2])).tolist()[::2] == [100.0, 100 / 3]
    assert np.isnan(percentile_rank(np.array([np.nan, np.nan]))).all()
    np.testing.assert_array_equal(percentile_rank(np.array([1.0, 1.0])), [100.0, 100.0])
