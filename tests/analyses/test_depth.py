"""Matching residual points of models of different depth by relative depth."""

from __future__ import annotations

import numpy as np

from layerdrift.analyses.depth import depth_matches, matched_point, positions_on


def test_equal_depths_match_point_to_point():
    np.testing.assert_array_equal(depth_matches([7, 7, 7]), np.repeat(np.arange(7)[:, None], 3, axis=1))


def test_smollm2_and_gemma_match_embedding_blocks_and_final_norm():
    """SmolLM2-135M: 30 blocks, 32 points; Gemma 3 270M: 18 blocks, 20 points."""
    rows = depth_matches([32, 20])
    assert rows.shape == (20, 2)
    assert tuple(rows[0]) == (0, 0) and tuple(rows[-1]) == (31, 19)  # embedding and final norm
    deep = rows[:, 0]
    assert (np.diff(deep) > 0).all(), "no deep point is used twice"
    for k in range(1, 19):  # block k of 18 sits at k/18 of the depth: block round(30 k / 18) of 30
        assert deep[k] == int(np.floor(30 * k / 18 + 0.5))
    assert deep[9] == 15 and deep[18] == 30  # the middle block to the middle block, the last to the last


def test_three_models_are_matched_at_the_shallowest_ones_points():
    rows = depth_matches([32, 20, 32])
    np.testing.assert_array_equal(rows[:, 0], rows[:, 2])
    np.testing.assert_array_equal(rows[:, 1], np.arange(20))


def test_half_way_rounds_up():
    assert matched_point(1, 4, 5) == 2  # block 1 of 2 -> 1.5 blocks of 3 -> block 2 (no banker's rounding to 2 or 1)
    assert matched_point(1, 3, 10) == 8  # a 1-block model's block is its last: the last of 8


def test_positions_on_a_deeper_axis():
    x = positions_on(20, 32)
    assert x[0] == 0 and x[-1] == 31 and x[-2] == 30 and x[9] == 15
    np.testing.assert_array_equal(positions_on(32, 32), np.arange(32))
