"""Behaviour-vector figures and the behaviour tab."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.core.naming import pair_key, safe_name
from layerdrift.dashboards.style import CATEGORY_COLOURS, FLOOR_COLOUR, LAYOUT, empty_figure, pair_colours


def _behaviour_colours(behaviours) -> dict[str, str]:
    return {b: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, b in enumerate(dict.fromkeys(behaviours))}


def behaviour_cosine_curves(cosine: pd.DataFrame, pair: str) -> go.Figure:
    """Per-layer cosine between two variants' behaviour vectors, a line per behaviour."""
    t = cosine[cosine["pair"] == pair]
    colours = _behaviour_colours(cosine["behaviour"])
    fig = go.Figure()
    for b, g in t.groupby("behaviour", sort=False):
        fig.add_trace(
            go.Scatter(
                x=g["layer"],
                y=g["cosine"],
                mode="lines+markers",
                name=b,
                line=dict(color=colours[b]),
                marker=dict(size=5),
                customdata=g["label"],
                hovertemplate="layer %{customdata}<br>cos %{y:.3f}<extra>" + b + "</extra>",
            )
        )
    if len(t):
        g = t.drop_duplicates("layer")
        fig.update_xaxes(tickmode="array", tickvals=g["layer"].tolist()[::2], ticktext=g["label"].tolist()[::2])
    fig.update_layout(
        **LAYOUT,
        title=f"Behaviour vectors, {pair}: cosine per layer",
        xaxis_title="residual point",
        yaxis_title="cosine",
        yaxis_range=[-0.2, 1.05],
        height=460,
        legend_title="behaviour",
    )
    return fig


def behaviour_cross_heatmap(cross: pd.DataFrame, behaviour: str, variant: str) -> go.Figure:
    """Cosine between a variant's behaviour vectors at every pair of layers."""
    t = cross[(cross["behaviour"] == behaviour) & (cross["variant"] == variant)]
    grid = t.pivot_table(index="layer_a", columns="layer_b", values="cosine", aggfunc="first")
    labels = t.drop_duplicates("layer_a").sort_values("layer_a")["label_a"].tolist()
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=labels,
            y=labels,
            colorscale="Viridis",
            zmin=-0.2,
            zmax=1,
            colorbar=dict(title="cos"),
            hovertemplate="layer %{y} vs %{x}<br>cos %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **LAYOUT,
        title=f"{behaviour}: cosine between layers' vectors ({variant})",
        xaxis_title="layer",
        yaxis_title="layer",
        height=600,
        width=680,
    )
    return fig


def behaviour_pca_scatter(pca: pd.DataFrame, behaviour: str) -> go.Figure:
    """Joint PCA of every (variant, layer) L2-normalised vector of one behaviour, labelled by layer."""
    t = pca[pca["behaviour"] == behaviour]
    fig = go.Figure()
    symbols = ["circle", "x", "diamond", "square", "triangle-up", "cross"]
    colours = pair_colours(list(dict.fromkeys(t["variant"])))
    for i, (v, g) in enumerate(t.groupby("variant", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=g["pc1"],
                y=g["pc2"],
                mode="lines+markers+text",
                name=v,
                text=g["label"],
                textposition="top right",
                textfont=dict(size=9),
                marker=dict(symbol=symbols[i % len(symbols)], size=8, color=colours[v]),
                line=dict(color=colours[v], width=0.6),
                hovertemplate="layer %{text}<br>(%{x:.3f}, %{y:.3f})<extra>" + v + "</extra>",
            )
        )
    ratio = t[["explained_pc1", "explained_pc2"]].iloc[0].tolist() if len(t) else [0, 0]
    fig.update_layout(
        **LAYOUT,
        title=f"{behaviour}: PCA of normalised vectors across layers and variants",
        xaxis_title=f"PC1 ({100 * ratio[0]:.0f}%)",
        yaxis_title=f"PC2 ({100 * ratio[1]:.0f}%)",
        height=600,
        width=760,
        legend_title="variant",
    )
    return fig


def steering_curves(steering: pd.DataFrame) -> go.Figure:
    """Shift in P(matching answer) when +c (solid) or −c (dashed) times the vector is added at a block; a panel per
    behaviour."""
    behaviours = list(dict.fromkeys(steering["behaviour"]))
    cols = min(3, len(behaviours)) or 1
    rows = -(-len(behaviours) // cols) or 1
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=behaviours,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        vertical_spacing=0.14,
    )
    colours = pair_colours(list(dict.fromkeys(steering["variant"])))
    for k, b in enumerate(behaviours):
        r, c = divmod(k, cols)
        for v, g in steering[(steering["behaviour"] == b) & (steering["scale"] != 0)].groupby("variant", sort=False):
            for sign, dash in ((1, "solid"), (-1, "dash")):
                h = g[np.sign(g["scale"]) == sign].sort_values("block")
                fig.add_trace(
                    go.Scatter(
                        x=h["block"],
                        y=h["shift"],
                        mode="lines+markers",
                        name=f"{v} {'+' if sign > 0 else '−'}c",
                        legendgroup=f"{v}{sign}",
                        showlegend=k == 0,
                        line=dict(color=colours[v], dash=dash),
                        marker=dict(size=5),
                        hovertemplate="block %{x}<br>ΔP %{y:+.3f}<extra>"
                        + f"{v} {'+' if sign > 0 else '−'}c"
                        + "</extra>",
                    ),
                    row=r + 1,
                    col=c + 1,
                )
        fig.add_hline(y=0, line=dict(color=FLOOR_COLOUR, width=1), row=r + 1, col=c + 1)
    scale = float(steering["scale"].abs().max()) if len(steering) else 0.0
    n = int(steering["n_items"].max()) if len(steering) else 0
    fig.update_layout(
        **LAYOUT,
        title=f"Steering check: shift in P(matching answer), ± {scale:g} × vector added at a "
        f"block ({n} held-out items each)",
        height=300 * rows + 120,
        legend_title="variant, sign",
    )
    fig.update_yaxes(title_text="ΔP(matching)", col=1)
    fig.update_xaxes(title_text="block", row=rows)
    return fig


class VectorsView(param.Parameterized):
    """Selection in the behaviour-vector tab: behaviour, variant pair and variant."""

    behaviour = param.Selector(objects=[])
    pair = param.Selector(objects=[])
    variant = param.Selector(objects=[])

    def __init__(self, tables: dict[str, pd.DataFrame], **params):
        self.tables = tables
        self.param.behaviour.objects = list(dict.fromkeys(tables["behaviour_vectors"]["behaviour"]))
        self.param.variant.objects = list(dict.fromkeys(tables["behaviour_vectors"]["variant"]))
        self.param.pair.objects = list(dict.fromkeys(tables["behaviour_cosine"]["pair"])) or ["(one variant)"]
        params.setdefault("behaviour", self.param.behaviour.objects[0])
        params.setdefault("variant", self.param.variant.objects[0])
        params.setdefault("pair", self.param.pair.objects[0])
        super().__init__(**params)

    def cosine_figure(self) -> go.Figure:
        fig = behaviour_cosine_curves(self.tables["behaviour_cosine"], self.pair)
        fig.update_layout(height=420)
        return fig

    def cross_figure(self) -> go.Figure:
        fig = behaviour_cross_heatmap(self.tables["behaviour_cross"], self.behaviour, self.variant)
        fig.update_layout(width=None, autosize=True, height=520)
        return fig

    def pca_figure(self) -> go.Figure:
        fig = behaviour_pca_scatter(self.tables["behaviour_pca"], self.behaviour)
        fig.update_layout(width=None, autosize=True, height=520)
        return fig

    def steering_figure(self) -> go.Figure:
        steering = self.tables["behaviour_steering"]
        if steering.empty:
            return empty_figure("no steering check in this run (behaviour.steering_items = 0)")
        return steering_curves(steering[steering["behaviour"] == self.behaviour])


def vectors_tab(tables: dict[str, pd.DataFrame]) -> pn.viewable.Viewable:
    view = VectorsView(tables)
    behaviour = pn.widgets.Select(
        label="behaviour", options=view.param.behaviour.objects, value=view.behaviour, width=200
    )
    pair = pn.widgets.Select(label="variant pair", options=view.param.pair.objects, value=view.pair, width=220)
    variant = pn.widgets.Select(
        label="variant (layer map)", options=view.param.variant.objects, value=view.variant, width=200
    )
    cosine = pn.pane.Plotly(view.cosine_figure(), sizing_mode="stretch_width", css_classes=["vector-cosine"])
    cross = pn.pane.Plotly(view.cross_figure(), sizing_mode="stretch_width")
    pca = pn.pane.Plotly(view.pca_figure(), sizing_mode="stretch_width")
    steering = pn.pane.Plotly(view.steering_figure(), sizing_mode="stretch_width")

    def redraw(*_):
        with pn.io.hold():
            cosine.object, cross.object, pca.object, steering.object = (
                view.cosine_figure(),
                view.cross_figure(),
                view.pca_figure(),
                view.steering_figure(),
            )

    for widget, name in ((behaviour, "behaviour"), (pair, "pair"), (variant, "variant")):
        widget.param.watch(lambda e, name=name: setattr(view, name, e.new), "value")
    view.param.watch(redraw, ["behaviour", "pair", "variant"])
    return pn.Column(pn.Row(behaviour, pair, variant), cosine, pn.Row(pca, cross), steering)


def figures(results: Any) -> dict[str, go.Figure]:
    """Cosine between variants per pair, joint PCA and cross-layer cosine per behaviour, and the steering check."""
    t = results.tables
    figs: dict[str, go.Figure] = {}
    cosine = t.get("behaviour_cosine")
    for pair in dict.fromkeys(cosine["pair"]) if cosine is not None and len(cosine) else []:
        figs[f"behaviour_cosine_{pair_key(pair)}"] = behaviour_cosine_curves(cosine, pair)
    pca, cross = t.get("behaviour_pca"), t.get("behaviour_cross")
    for b in dict.fromkeys(pca["behaviour"]) if pca is not None and len(pca) else []:
        figs[f"behaviour_pca_{safe_name(b)}"] = behaviour_pca_scatter(pca, b)
        first = cross[cross["behaviour"] == b]["variant"].iloc[0]
        figs[f"behaviour_layers_{safe_name(b)}"] = behaviour_cross_heatmap(cross, b, first)
    steering = t.get("behaviour_steering")
    if steering is not None and len(steering):
        figs["behaviour_steering"] = steering_curves(steering)
    return figs


def tabs(results: Any, selection: Any = None) -> list[tuple[str, Any]]:
    return (
        [("Behaviour vectors", vectors_tab(results.tables))] if len(results.tables.get("behaviour_vectors", ())) else []
    )
