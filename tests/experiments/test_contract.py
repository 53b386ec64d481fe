"""One contract, checked for every registered experiment (in the spirit of scikit-learn's parametrize_with_checks).

On runs of the tiny in-process models: the experiment wrote every table and artifact it declares; opened again
from disk, its figures build, its summaries render and its dashboard tab builds; and a second run reuses its
result set without recomputing or loading a model.
"""

from __future__ import annotations

from dataclasses import replace

import plotly.graph_objects as go
import pytest

from layerdrift import open_run
from layerdrift.dashboards.selection import Selection
from layerdrift.workbench.config import config_from_dict
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.registry import EXPERIMENTS
from layerdrift.workbench.models import loading


def finished_run(experiment, request):
    return request.getfixturevalue("series_run" if experiment.name == "trajectory" else "tiny_run")


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_experiment_contract(experiment, request, monkeypatch):
    run = open_run(finished_run(experiment, request).store.root)  # everything below reads the files
    assert experiment.name in [e.name for e in run.experiments]
    for table in experiment.tables:
        assert table in run.tables, table
    assert len(run.tables[experiment.tables[0]]) > 0
    for artifact in experiment.artifacts:
        assert len(run.arrays[f"{experiment.name}/{artifact}"]) > 0, artifact

    figures = experiment.figures(run)
    assert figures and all(isinstance(f, go.Figure) and len(f.data) for f in figures.values())
    assert set(figures) <= set(run.figures)  # the report and open_run show the same figures
    summaries = experiment.summaries(run)
    assert summaries and all(isinstance(t, str) and len(frame) for t, frame in summaries.items())
    tabs = experiment.tabs(run, Selection())
    assert tabs and all(isinstance(title, str) and view is not None for title, view in tabs)

    # a second run of the same config finds the result set under the same fingerprint: no model, no recompute
    monkeypatch.setattr(loading, "load_variant", lambda *a, **k: pytest.fail("a cached experiment loaded a model"))
    ctx = RunContext(config_from_dict(run.store.manifest["config"]), run.store)
    key = experiment.runner(ctx).key

    class Recompute:
        def __init__(self, ctx):
            self.key = key

        def run(self):
            pytest.fail(f"{experiment.name} was recomputed although its result set is current")

    cached = ctx.results(replace(experiment, runner=Recompute))
    for table in experiment.tables:
        assert cached.tables[table].equals(run.tables[table]), table
