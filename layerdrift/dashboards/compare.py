"""Figures of several runs side by side (``layerdrift.workbench.compare``): one colour per run, one dash per pair."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from layerdrift.dashboards.style import LAYOUT, PAIR_COLOURS, ci_error_bars

DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def run_colours(runs: list[str]) -> dict[str, str]:
    return {r: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, r in enumerate(runs)}


def pair_bars(pairs: pd.DataFrame) -> go.Figure:
    """Each run's mean drift per pair at its headline layer, with its 95% CI (log scale)."""
    colours = run_colours(list(dict.fromkeys(pairs["run"])))
    fig = go.Figure()
    for run, part in pairs.groupby("run", sort=False):
        fig.add_bar(
            x=part["pair"], y=part["mean"], name=str(run), marker_color=colours[run], error_y=ci_error_bars(part)
        )
    fig.update_layout(
        **LAYOUT,
        barmode="group",
        title="Mean cosine drift per pair at each run's headline layer (95% CI)",
        yaxis={"type": "log", "title": "mean cosine drift (log)"},
        xaxis_title="variant pair",
        width=1000,
        height=480,
    )
    return fig


def depth_curves(layers: pd.DataFrame, axis: str) -> go.Figure:
    """Mean drift by depth for every run (colour) and pair (dash); ``axis`` is ``label`` or ``relative_depth``."""
    colours = run_colours(list(dict.fromkeys(layers["run"])))
    dashes = {p: DASHES[i % len(DASHES)] for i, p in enumerate(dict.fromkeys(layers["pair"]))}
    fig = go.Figure()
    for (run, pair), part in layers.dropna(subset=["drift_mean"]).groupby(["run", "pair"], sort=False):
        fig.add_scatter(
            x=part[axis],
            y=part["drift_mean"],
            mode="lines+markers",
            name=f"{run}: {pair}",
            line={"color": colours[run], "dash": dashes[pair]},
            marker={"size": 4},
        )
    fig.update_layout(
        **LAYOUT,
        title="Mean cosine drift by depth, every run and pair",
        yaxis={"type": "log", "title": "mean cosine drift (log)"},
        xaxis_title="residual point" if axis == "label" else "relative depth (0 = embedding, 1 = final norm)",
        width=1000,
        height=520,
    )
    return fig


def category_bars(categories: pd.DataFrame) -> go.Figure:
    """Mean drift per category for every run and pair but the noise floors, with 95% CIs."""
    colours = run_colours(list(dict.fromkeys(categories["run"])))
    fig = go.Figure()
    rows = categories[~categories["floor"].astype(bool)] if "floor" in categories else categories
    for (run, pair), part in rows.groupby(["run", "pair"], sort=False):
        fig.add_bar(
            x=part["category"],
            y=part["mean"],
            name=f"{run}: {pair}",
            marker_color=colours[run],
            error_y=ci_error_bars(part),
        )
    fig.update_layout(
        **LAYOUT,
        barmode="group",
        title="Mean cosine drift per category (categories every run has; 95% CI)",
        yaxis={"type": "log", "title": "mean cosine drift (log)"},
        width=1000,
        height=480,
    )
    return fig
