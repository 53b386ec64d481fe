"""Labelled activations: the lazy DataArray equals the store's arrays and reads only the points selected."""

from __future__ import annotations

import numpy as np
import pytest

from layerdrift.core.naming import point_label
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.store.runstore import CaptureJob


def test_the_dataarray_is_the_stores_arrays_with_their_labels(tiny_run):
    store = tiny_run.store
    acts = tiny_run.activations("tuned")
    points = store.residual_points("tuned", "concepts")
    assert acts.dims == ("prompt", "point", "d_model") and list(acts.point.values) == points
    assert list(acts.label.values) == [point_label(p) for p in points]
    assert (
        list(acts.term.values) == tiny_run.meta["terms"] and list(acts.category.values) == tiny_run.meta["categories"]
    )
    assert list(acts.text.values) == store.tokenization("tuned", "concepts")["texts"]
    for i, point in enumerate(points):
        np.testing.assert_array_equal(acts.sel(point=point).values, store.layer("tuned", "concepts", i))
    term = tiny_run.meta["terms"][3]
    row = acts.swap_dims(prompt="term").sel(term=term, point=points[-1]).values
    np.testing.assert_array_equal(row, store.layer("tuned", "concepts", -1)[3])


def test_selecting_a_point_reads_that_points_array_only(tiny_run, monkeypatch):
    reads: list[str] = []
    load = CaptureJob._load

    def counted(self, key):
        reads.append(key)
        return load(self, key)

    monkeypatch.setattr(CaptureJob, "_load", counted)
    acts = tiny_run.activations("base")
    assert reads == []  # building it reads nothing
    point = acts.point.values[2]
    one = acts.sel(point=point).values
    assert reads == [f"last/{point}"] and one.shape == (acts.sizes["prompt"], acts.sizes["d_model"])
    two = float(acts.isel(point=[0, 3]).mean())
    assert sorted(reads[1:]) == sorted(f"last/{p}" for p in acts.point.values[[0, 3]]) and np.isfinite(two)


def test_an_unknown_prompt_set_is_named(tiny_run):
    with pytest.raises(LayerdriftError, match="has no prompt set 'nope'; its prompt sets: concepts"):
        tiny_run.activations("base", prompt_set="nope")
