"""Runs side by side: the stacked tables are each run's own, and what the runs do not share is said, not mixed."""

from __future__ import annotations

import pandas as pd
import pytest

from layerdrift import compare_runs
from layerdrift.errors import LayerdriftError


def test_two_runs_side_by_side_are_each_runs_own_tables(tiny_run, tmp_path):
    from layerdrift.workbench.compare import write_comparison

    c = compare_runs([tiny_run, tiny_run], names=["a", "b"])
    assert c.notes == [] and c.depth_axis == "label"
    for name in ("pairs", "categories", "layers"):
        for run in ("a", "b"):
            mine = c.tables[name][c.tables[name]["run"] == run].drop(columns=["run"]).reset_index(drop=True)
            own = tiny_run.tables[name].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine[own.columns].astype(str), own.astype(str), check_dtype=False)
    layers = c.tables["layers"]
    assert layers.groupby(["run", "pair"])["relative_depth"].agg(["min", "max"]).eq([0.0, 1.0]).all(axis=None)
    notes = write_comparison(c, tmp_path / "cmp", png=False)
    page = (tmp_path / "cmp/index.html").read_text()
    assert notes == [] and "<b>a</b>" in page and (tmp_path / "cmp/tables/layers.csv").is_file()
    assert set(c.figures) == {"pair_drift", "drift_by_depth", "category_drift"}


def test_runs_of_other_concepts_and_depths_are_compared_where_they_can_be(tiny_run, series_run):
    c = compare_runs([tiny_run, series_run], names=["quant", "series"])
    assert any(
        "measured other concepts than quant" in n and "per-concept tables are not compared" in n for n in c.notes
    )
    shared = set(tiny_run.meta["categories"]) & set(series_run.meta["categories"])
    assert set(c.tables["categories"]["category"]) == shared
    if tiny_run.meta["labels"] != series_run.meta["labels"]:
        assert c.depth_axis == "relative_depth" and any("relative depth" in n for n in c.notes)


@pytest.mark.parametrize("names", [None, ["x"]])
def test_compare_needs_two_runs_with_their_own_names(tiny_run, names):
    runs = [tiny_run, tiny_run] if names is None else [tiny_run]
    with pytest.raises(LayerdriftError, match="compare needs at least two runs, each with its own name"):
        compare_runs(runs, names)
