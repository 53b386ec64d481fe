"""Patching figures and the patching tab."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from layerdrift.core.naming import safe_name
from layerdrift.dashboards.style import FLOOR_COLOUR, LAYOUT, ci_error_bars, pair_colours

PATCH_METRICS = {
    "normalised_logit_diff": "normalised effect on logit(B) − logit(A)",
    "normalised_logprob": "normalised effect on log p(target)",
    "delta_logit_diff": "Δ logit difference",
    "delta_logprob": "Δ log p(target)",
}


def _position_order(positions) -> list[str]:
    """Offsets from the earliest to the last token, then 'all'."""
    offsets = sorted((p for p in set(positions) if p != "all"), key=int)
    return offsets + (["all"] if "all" in set(positions) else [])


def patching_heatmap(
    patching: pd.DataFrame, direction: str, component: str, metric: str = "normalised_logit_diff"
) -> go.Figure:
    """Layer x position map of one patching direction and component (0 = receiver unchanged, 1 = source's behaviour)."""
    t = patching[(patching["direction"] == direction) & (patching["component"] == component)]
    order = _position_order(t["position"])
    grid = t.pivot_table(index="block", columns="position", values=metric, aggfunc="first").reindex(columns=order)
    normalised = metric.startswith("normalised")
    reach = max(1.0, float(np.nanmax(np.abs(grid.values)))) if normalised and np.isfinite(grid.values).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[("token " + p) if p != "all" else "all tokens" for p in order],
            y=grid.index,
            colorscale="RdBu_r",
            zmid=0,
            zmin=-reach if normalised else None,  # the whole range of the data, never clipped
            zmax=reach if normalised else None,
            colorbar=dict(title="effect"),
            hovertemplate="block %{y}<br>%{x}<br>" + metric + " %{z:.3f}<extra></extra>",
        )
    )
    n = int(t["n_prompts"].max()) if len(t) else 0
    fig.update_layout(
        **LAYOUT,
        title=f"Patching {direction}: {component} output<br><sup>{PATCH_METRICS[metric]}, {n} prompts</sup>",
        xaxis_title="patched position (from the end)",
        yaxis_title="block",
        height=560,
        width=760,
    )
    return fig


def patching_curves(patching: pd.DataFrame, metric: str = "normalised_logit_diff", position: str = "all") -> go.Figure:
    """Per-block effect of patching at one position (default every position at once), a line per direction and
    component."""
    t = patching[patching["position"] == position]
    fig = go.Figure()
    colours = pair_colours(list(dict.fromkeys(t["direction"])))
    dashes = {"resid": "solid", "attn": "dot", "mlp": "dash"}
    for (direction, component), g in t.groupby(["direction", "component"], sort=False):
        g = g.sort_values("block")
        ci = f"{metric}_ci_low" in g and f"{metric}_ci_high" in g
        fig.add_trace(
            go.Scatter(
                x=g["block"],
                y=g[metric],
                error_y=ci_error_bars(g, metric, f"{metric}_ci_low", f"{metric}_ci_high", thickness=1, width=3)
                if ci
                else None,
                mode="lines+markers",
                name=f"{direction} ({component})",
                line=dict(color=colours[direction], dash=dashes.get(component, "solid")),
                marker=dict(size=5),
                hovertemplate="block %{x}<br>%{y:.3f}<extra>" + f"{direction} ({component})" + "</extra>",
            )
        )
    where = "every position at once" if position == "all" else f"token {position}"
    fig.add_hline(y=0, line=dict(color=FLOOR_COLOUR, width=1))
    if metric.startswith("normalised"):
        fig.add_hline(y=1, line=dict(color=FLOOR_COLOUR, width=1, dash="dash"))
    fig.update_layout(
        **LAYOUT,
        title=f"Patching per block ({where}): {PATCH_METRICS[metric]}"
        + (
            "<br><sup>bars: 95% bootstrap CI over prompts; near-ties left out</sup>"
            if metric.startswith("normalised")
            else ""
        ),
        xaxis_title="block",
        yaxis_title=metric.replace("_", " "),
        height=460,
        legend_title="source into receiver (component)",
    )
    return fig


class PatchingView(param.Parameterized):
    """Selection in the patching tab: direction, component and metric."""

    direction = param.Selector(objects=[])
    component = param.Selector(objects=[])
    metric = param.Selector(default="normalised_logit_diff", objects=list(PATCH_METRICS))

    def __init__(self, tables: dict[str, pd.DataFrame], **params):
        self.table, self.prompts = tables["patching"], tables.get("patching_prompts", pd.DataFrame())
        self.param.direction.objects = list(dict.fromkeys(self.table["direction"]))
        self.param.component.objects = list(dict.fromkeys(self.table["component"]))
        params.setdefault("direction", self.param.direction.objects[0])
        params.setdefault("component", self.param.component.objects[0])
        super().__init__(**params)

    def heatmap(self) -> go.Figure:
        fig = patching_heatmap(self.table, self.direction, self.component, self.metric)
        fig.update_layout(width=None, autosize=True)
        return fig

    def curves(self) -> go.Figure:
        return patching_curves(self.table[self.table["component"] == self.component], self.metric)

    def prompt_table(self) -> pd.DataFrame:
        """The patched prompts of the selected direction's pair, with both variants' answers."""
        if self.prompts.empty:
            return self.prompts
        row = self.table[self.table["direction"] == self.direction].iloc[0]
        pair = row["pair"]
        cols = [
            "prompt",
            "category",
            "target",
            "answer_a",
            "answer_b",
            "token_a",
            "token_b",
            "logit_diff_a",
            "logit_diff_b",
        ]
        return self.prompts[self.prompts["pair"] == pair][[c for c in cols if c in self.prompts]].reset_index(drop=True)


def patching_tab(tables: dict[str, pd.DataFrame]) -> pn.viewable.Viewable:
    view = PatchingView(tables)
    direction = pn.widgets.Select(
        label="source into receiver", options=view.param.direction.objects, value=view.direction, width=260
    )
    component = pn.widgets.Select(
        label="component", options=view.param.component.objects, value=view.component, width=140
    )
    metric = pn.widgets.Select(label="metric", options=list(PATCH_METRICS), value=view.metric, width=220)
    heat = pn.pane.Plotly(view.heatmap(), sizing_mode="stretch_width", css_classes=["patch-map"])
    curves = pn.pane.Plotly(view.curves(), sizing_mode="stretch_width")
    prompts = pn.widgets.Tabulator(
        view.prompt_table(),
        disabled=True,
        show_index=False,
        layout="fit_data_stretch",
        height=300,
        css_classes=["patch-prompts"],
    )

    def redraw(*_):
        with pn.io.hold():
            heat.object, curves.object, prompts.value = view.heatmap(), view.curves(), view.prompt_table()

    for widget, name in ((direction, "direction"), (component, "component"), (metric, "metric")):
        widget.param.watch(lambda e, name=name: setattr(view, name, e.new), "value")
    view.param.watch(redraw, ["direction", "component", "metric"])
    note = pn.pane.Markdown(
        "0 = the receiver's own behaviour, 1 = the source's. Prompts are those whose "
        "greedy answers differ (flips) unless the config says otherwise."
    )
    return pn.Column(
        pn.Row(direction, component, metric),
        note,
        pn.Row(heat, curves),
        pn.pane.Markdown("**Patched prompts**"),
        prompts,
    )


def figures(results: Any) -> dict[str, go.Figure]:
    """Effect by block (every position, last token) and one block x position map per direction and component."""
    patching = results.tables.get("patching")
    if patching is None or not len(patching):
        return {}
    figs = {
        "patching_by_block": patching_curves(patching),
        "patching_by_block_last_token": patching_curves(patching, position="-1"),
    }
    for direction, component in patching.groupby(["direction", "component"], sort=False).groups:
        figs[f"patching_map_{safe_name(direction)}_{component}"] = patching_heatmap(patching, direction, component)
    return figs


def tabs(results: Any, selection: Any = None) -> list[tuple[str, Any]]:
    return [("Patching", patching_tab(results.tables))] if len(results.tables.get("patching", ())) else []
