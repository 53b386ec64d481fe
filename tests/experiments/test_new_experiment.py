"""A new experiment is its own modules plus one registry line: this one (a per-layer norm ratio between each variant
and the reference) is defined here alone, registered, and reaches the run, the cache, ``open_run``, the report and
the dashboard without any other file knowing it. CONTRIBUTING.md walks through the same steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from layerdrift.core.hashing import fingerprint
from layerdrift.workbench.experiments import registry
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment, Output


def ratios(store, ref: str, v: str) -> list[dict]:
    return [
        {"variant": v, "layer": i, "ratio": norm_ratio(store.layer(ref, "concepts", i), store.layer(v, "concepts", i))}
        for i in range(len(store.residual_points(v, "concepts")))
    ]


def norm_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """analyses/: mean ||b_i|| / ||a_i|| over prompts."""
    return float(np.mean(np.linalg.norm(b, axis=1) / np.linalg.norm(a, axis=1)))


class NormRun:
    """workbench/experiments/: reads the cached captures, no model."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.key = fingerprint({"captures": sorted(ctx.store.manifest["captures"])})

    def run(self) -> Output:
        store, ref = self.ctx.store, self.ctx.store.reference
        rows = [
            {
                "variant": v,
                "layer": i,
                "ratio": norm_ratio(store.layer(ref, "concepts", i), store.layer(v, "concepts", i)),
            }
            for v in store.main_variants
            for i in range(len(store.residual_points(v, "concepts")))
        ]
        return Output({"norm_ratio": pd.DataFrame(rows)})


def figures(run) -> dict[str, go.Figure]:
    """dashboards/: one figure, keyed by what it shows."""
    t = run.tables["norm_ratio"]
    return {
        "norm_ratio_by_layer": go.Figure(
            [go.Scatter(x=g["layer"], y=g["ratio"], name=v) for v, g in t.groupby("variant")]
        )
    }


def tabs(run, selection):
    import panel as pn

    return [("Norms", pn.pane.DataFrame(run.tables["norm_ratio"]))]


NORMS = Experiment(
    name="norms",
    version="1",
    settings=lambda config: config.analysis,  # a real one gets its own typed field in workbench/config.py
    runner=NormRun,
    tables=("norm_ratio",),
    summaries=lambda run: {
        "Norm ratio to the reference, last layer": run.tables["norm_ratio"].groupby("variant").last()
    },
    figures=figures,
    tabs=tabs,
)


def test_a_registered_experiment_reaches_every_output(tiny_model, tiny_model_b, vocab_file, tmp_path, monkeypatch):
    from test_run import tiny_run_config

    from layerdrift import open_run, run
    from layerdrift.dashboards.app import build_app

    monkeypatch.setattr(registry, "EXPERIMENTS", (*registry.EXPERIMENTS, NORMS))  # the one registry line
    result = run(tiny_run_config(tmp_path / "run", tiny_model, tiny_model_b, vocab_file, png=False), quiet=True)
    again = open_run(tmp_path / "run")
    table = again.tables["norm_ratio"]
    ref = table[table["variant"] == again.store.reference]
    np.testing.assert_allclose(ref["ratio"], 1.0)  # the reference against itself
    assert "norm_ratio_by_layer" in again.figures and result.tables["norm_ratio"].equals(table)
    index = (tmp_path / "run/report/index.html").read_text()
    assert "Norm ratio to the reference" in index and "norm_ratio_by_layer.html" in index
    assert (tmp_path / "run/report/tables/norm_ratio.csv").is_file()
    _, tabs = build_app(again).objects
    assert tabs._names[-1] == "Norms"
