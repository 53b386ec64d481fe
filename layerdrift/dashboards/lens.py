"""Figures of the lens experiment: where each pair's difference starts along depth, and common-lens JS by layer."""

from __future__ import annotations

from html import escape as escape_html
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import plotly.graph_objects as go

from layerdrift.dashboards.style import LAYOUT, PAIR_COLOURS, pair_colours, shade_band

JS_RESOLVED = 1e-12  # below this a common-lens JS is float32 rounding, not a difference
CURVE_COLUMNS = {  # localisation curve -> (table, column, transform to "larger = more different")
    "drift": ("layers", "drift_mean", lambda v: v),
    "jaccard": ("layers", "jaccard_mean", lambda v: 1.0 - v),
    "cka": ("layers", "cka", lambda v: 1.0 - v),
    "lens_js": ("lens_layers", "js", lambda v: v),
}


def depth_curves(tables: Any, pair: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each localisation curve of a pair as (point labels, mean values) in depth order."""
    out = {}
    for curve, (table, column, transform) in CURVE_COLUMNS.items():
        rows = tables[table][tables[table]["pair"] == pair].sort_values("layer")
        if len(rows):
            out[curve] = (rows["label"].astype(str).tolist(), transform(rows[column].to_numpy(dtype=float)))
    return out


def localisation_figure(tables: Any, pair: str) -> go.Figure:
    """Every depth curve of one pair divided by its largest value, on one depth axis; each curve's onset (circle)
    and break (diamond) marked."""
    located = tables["localisation"][tables["localisation"]["pair"] == pair].set_index("curve")
    fig = go.Figure()
    for i, (curve, (labels, values)) in enumerate(depth_curves(tables, pair).items()):
        peak = np.nanmax(values) if np.isfinite(values).any() else np.nan
        scaled = values / peak if peak > 0 else values
        colour = PAIR_COLOURS[i % len(PAIR_COLOURS)]
        name = located.loc[curve, "measure"] if curve in located.index else curve
        fig.add_trace(go.Scatter(x=labels, y=scaled, mode="lines", name=escape_html(name), line=dict(color=colour)))
        if curve not in located.index:
            continue
        for mark, symbol in (("onset", "circle"), ("break", "diamond")):
            at = located.loc[curve, f"{mark}_label"]
            if isinstance(at, str) and at in labels:
                fig.add_trace(
                    go.Scatter(
                        x=[at],
                        y=[scaled[labels.index(at)]],
                        mode="markers",
                        marker=dict(symbol=symbol, size=11, color=colour, line=dict(color="black", width=1)),
                        name=f"{escape_html(name)}: {mark}",
                        showlegend=False,
                        hovertemplate=f"{escape_html(name)} {mark} at %{{x}}<extra></extra>",
                    )
                )
    fig.update_layout(
        **LAYOUT,
        title=f"Where {escape_html(pair)} starts to differ (each curve / its maximum; ○ onset over the noise floor, "
        "◇ largest step)",
        xaxis_title="residual point",
        yaxis_title="share of the curve's maximum",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def common_lens_figure(lens_layers: pd.DataFrame) -> go.Figure:
    """Common-lens JS per pair and point (both residuals through the reference's head), with 95% CIs."""
    fig = go.Figure()
    colours = pair_colours(list(dict.fromkeys(lens_layers["pair"])))
    for pair, rows in lens_layers.groupby("pair", sort=False):
        rows = rows.sort_values("layer")
        zero = rows["js"] < JS_RESOLVED  # a log axis: what float32 read-outs cannot resolve is left out
        rows = rows.assign(**{c: rows[c].mask(zero) for c in ("js", "js_ci_low", "js_ci_high")})
        x = rows["label"].astype(str).tolist()
        shade_band(fig, x, rows["js_ci_low"], rows["js_ci_high"], colours[pair], pair)
        dash = "dash" if rows["floor"].iloc[0] else "solid"
        fig.add_trace(
            go.Scatter(
                x=x, y=rows["js"], mode="lines", name=escape_html(pair), line=dict(color=colours[pair], dash=dash)
            )
        )
    fig.update_layout(
        **LAYOUT,
        title="Common-lens JS by layer (both variants read through the reference's head; noise floor dashed; "
        "JS under 1e-12 not drawn)",
        xaxis_title="residual point",
        yaxis_title="JS (nats), log scale",
        yaxis_type="log",
    )
    return fig


def figures(results: Any) -> dict[str, go.Figure]:
    t = results.tables
    out = {}
    if len(t["lens_layers"]):
        out["lens_common_js"] = common_lens_figure(t["lens_layers"])
    for pair in dict.fromkeys(t["localisation"]["pair"]) if len(t["localisation"]) else []:
        out[f"localisation_{pair}"] = localisation_figure(t, pair)
    return out


def tabs(results: Any) -> list[tuple[str, Any]]:
    shown = figures(results)
    if not shown:
        return []
    panes = [pn.pane.Plotly(fig, sizing_mode="stretch_width") for fig in shown.values()]
    return [("Localisation", pn.Column(*panes, sizing_mode="stretch_width"))]
