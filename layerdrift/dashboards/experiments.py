"""Dashboard tabs for the patching, behaviour-vector, manifold and trajectory experiments (shown when a run has their
tables).

As in the main dashboard, each view object holds the selection and turns the result tables into
figures with the report's builders; the Panel functions only wire widgets to it.
"""

from __future__ import annotations

import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from layerdrift import figures as F
from layerdrift import figures_manifold as MF


class PatchingView(param.Parameterized):
    """Selection in the patching tab: direction, component and metric."""

    direction = param.Selector(objects=[])
    component = param.Selector(objects=[])
    metric = param.Selector(default="normalised_logit_diff", objects=list(F.PATCH_METRICS))

    def __init__(self, tables: dict[str, pd.DataFrame], **params):
        self.table, self.prompts = tables["patching"], tables.get("patching_prompts", pd.DataFrame())
        self.param.direction.objects = list(dict.fromkeys(self.table["direction"]))
        self.param.component.objects = list(dict.fromkeys(self.table["component"]))
        params.setdefault("direction", self.param.direction.objects[0])
        params.setdefault("component", self.param.component.objects[0])
        super().__init__(**params)

    def heatmap(self) -> go.Figure:
        fig = F.patching_heatmap(self.table, self.direction, self.component, self.metric)
        fig.update_layout(width=None, autosize=True)
        return fig

    def curves(self) -> go.Figure:
        return F.patching_curves(self.table[self.table["component"] == self.component], self.metric)

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
        fig = F.behaviour_cosine_curves(self.tables["behaviour_cosine"], self.pair)
        fig.update_layout(height=420)
        return fig

    def cross_figure(self) -> go.Figure:
        fig = F.behaviour_cross_heatmap(self.tables["behaviour_cross"], self.behaviour, self.variant)
        fig.update_layout(width=None, autosize=True, height=520)
        return fig

    def pca_figure(self) -> go.Figure:
        fig = F.behaviour_pca_scatter(self.tables["behaviour_pca"], self.behaviour)
        fig.update_layout(width=None, autosize=True, height=520)
        return fig

    def steering_figure(self) -> go.Figure:
        steering = self.tables["behaviour_steering"]
        if steering.empty:
            fig = go.Figure()
            fig.add_annotation(
                text="no steering check in this run (behaviour.steering_items = 0)",
                showarrow=False,
                x=0.5,
                y=0.5,
                xref="paper",
                yref="paper",
            )
            return fig
        return F.steering_curves(steering[steering["behaviour"] == self.behaviour])


class ManifoldView(param.Parameterized):
    """Selection in the manifold tab: probe set, variant, which map, and the cell (residual point, token) shown as a
    projection."""

    probe_set = param.Selector(objects=[])
    variant = param.Selector(objects=[])
    view = param.Selector(
        default="score", objects=["score", "difference", "score_orthonormal", "rigid_gap", "score_reuse"]
    )
    point = param.Integer(default=0, bounds=(0, None))
    slot = param.Integer(default=0, bounds=(0, None))

    def __init__(self, tables: dict[str, pd.DataFrame], projections: dict, **params):
        self.scores, self.projections = tables["manifold_scores"], projections
        self.param.probe_set.objects = list(dict.fromkeys(self.scores["set"]))
        self.param.variant.objects = list(dict.fromkeys(self.scores["variant"]))
        params.setdefault("probe_set", self.param.probe_set.objects[0])
        params.setdefault("variant", self.param.variant.objects[0])
        super().__init__(**params)
        self.select_best()

    @property
    def reference(self) -> str:
        return str(self.scores["reference"].iloc[0])

    def table(self) -> pd.DataFrame:
        return self.scores[(self.scores["set"] == self.probe_set) & (self.scores["variant"] == self.variant)]

    def select_best(self) -> None:
        """Point the projection at the best cell of the source token."""
        best = MF.best_cell(self.scores, self.probe_set, self.variant, "source")
        self.point, self.slot = int(best["point"]), int(best["slot"])

    def click(self, data: dict | None) -> None:
        """A click on a heatmap cell selects it (x = token slot, y = residual point)."""
        if data and data.get("points"):
            p = data["points"][0]
            self.param.update(point=int(p["y"]), slot=int(p["x"]))

    def heatmap(self) -> go.Figure:
        t = self.scores[self.scores["set"] == self.probe_set]
        if self.view == "difference":
            if self.variant == self.reference:
                fig = go.Figure()
                fig.add_annotation(
                    text=f"{self.variant} is the reference; pick another variant to see its difference",
                    showarrow=False,
                    x=0.5,
                    y=0.5,
                    xref="paper",
                    yref="paper",
                )
                return fig
            fig = MF.manifold_difference(
                t[t["variant"].isin([self.reference, self.variant])], self.probe_set, self.reference
            )
            if fig is None:
                fig = go.Figure()
                fig.add_annotation(
                    text=f"{self.variant} aligns the prompts to other tokens than {self.reference} "
                    "(another tokenizer): no cell-by-cell difference",
                    showarrow=False,
                    x=0.5,
                    y=0.5,
                    xref="paper",
                    yref="paper",
                )
                return fig
        else:
            fig = MF.manifold_heatmaps(t[t["variant"] == self.variant], self.probe_set, self.view)
        fig.add_trace(
            go.Scatter(
                x=[self.slot],
                y=[self.point],
                mode="markers",
                marker=dict(symbol="square-open", size=14, color="#ff00ff", line=dict(width=2)),
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.update_layout(width=None, autosize=True, height=620)
        return fig

    def cell(self) -> pd.Series | None:
        t = self.table()
        row = t[(t["point"] == self.point) & (t["slot"] == self.slot)]
        return None if row.empty else row.iloc[0]

    def projection(self) -> go.Figure:
        row = self.cell()
        key = f"{self.variant}/{self.probe_set}"
        if row is None or key not in self.projections:
            fig = go.Figure()
            fig.add_annotation(
                text="no projection for this cell (the run's manifold/projections.npz is missing)",
                showarrow=False,
                x=0.5,
                y=0.5,
                xref="paper",
                yref="paper",
            )
            return fig
        coords = self.projections[key][self.point, self.slot]
        title = (
            f"{self.variant}: token {row['slot_label']!r} at point {row['label']}<br><sup>score {row['score']:.3f}, "
            f"orthonormal {row['score_orthonormal']:.3f}, chance {row['score_chance']:.3f}</sup>"
        )
        period = row["period"] if pd.notna(row["period"]) else None
        fig = MF.manifold_projection(coords, self.projections[f"{key}/labels"], row["shape"], title, period)
        fig.update_layout(width=None, autosize=True)
        return fig

    def landmarks(self) -> go.Figure:
        fig = MF.manifold_landmark_curves(self.scores, self.probe_set)
        fig.update_layout(width=None, autosize=True, height=420)
        return fig


def manifold_tab(tables: dict[str, pd.DataFrame], projections: dict) -> pn.viewable.Viewable:
    view = ManifoldView(tables, projections)
    probe_set = pn.widgets.Select(
        label="probe set", options=view.param.probe_set.objects, value=view.probe_set, width=180
    )
    variant = pn.widgets.Select(label="variant", options=view.param.variant.objects, value=view.variant, width=180)
    which = pn.widgets.Select(
        label="map",
        options={
            "score (ridge)": "score",
            "difference from the reference": "difference",
            "score (orthonormal)": "score_orthonormal",
            "orthonormal − ridge": "rigid_gap",
            "reuse of the source token's map": "score_reuse",
        },
        value=view.view,
        width=240,
    )
    heat = pn.pane.Plotly(view.heatmap(), sizing_mode="stretch_width", css_classes=["manifold-map"])
    proj = pn.pane.Plotly(view.projection(), width=520, height=520, css_classes=["manifold-projection"])
    curves = pn.pane.Plotly(view.landmarks(), sizing_mode="stretch_width")

    def redraw_map(*_):
        heat.object = view.heatmap()

    def redraw_cell(*_):
        with pn.io.hold():
            proj.object, heat.object = view.projection(), view.heatmap()

    def new_selection(*_):
        view.select_best()
        with pn.io.hold():
            heat.object, proj.object, curves.object = view.heatmap(), view.projection(), view.landmarks()

    for widget, name in ((probe_set, "probe_set"), (variant, "variant"), (which, "view")):
        widget.param.watch(lambda e, name=name: setattr(view, name, e.new), "value")
    heat.param.watch(lambda e: view.click(e.new), "click_data")
    view.param.watch(new_selection, ["probe_set", "variant"])
    view.param.watch(redraw_map, ["view"])
    view.param.watch(redraw_cell, ["point", "slot"])
    note = pn.pane.Markdown(
        "Cross-validated SMDS score of every residual point (rows) and aligned token "
        "(columns); landmark tokens are coloured. "
        "**Click a cell** to see its held-out 2-D projection coloured by the label."
    )
    return pn.Column(pn.Row(probe_set, variant, which), note, pn.Row(heat, proj), curves)


def patching_tab(tables: dict[str, pd.DataFrame]) -> pn.viewable.Viewable:
    view = PatchingView(tables)
    direction = pn.widgets.Select(
        label="source into receiver", options=view.param.direction.objects, value=view.direction, width=260
    )
    component = pn.widgets.Select(
        label="component", options=view.param.component.objects, value=view.component, width=140
    )
    metric = pn.widgets.Select(label="metric", options=list(F.PATCH_METRICS), value=view.metric, width=220)
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


def experiment_tabs(
    tables: dict[str, pd.DataFrame], projections: dict | None = None, terms: list[str] | None = None
) -> list[tuple[str, pn.viewable.Viewable]]:
    """The tabs a run's tables support."""
    from layerdrift.dashboards.trajectory import trajectory_tab

    tabs = []
    if len(tables.get("patching", ())):
        tabs.append(("Patching", patching_tab(tables)))
    if len(tables.get("behaviour_vectors", ())):
        tabs.append(("Behaviour vectors", vectors_tab(tables)))
    if len(tables.get("manifold_scores", ())):
        tabs.append(("Manifolds", manifold_tab(tables, projections or {})))
    if len(tables.get("trajectory", ())):
        tabs.append(("Trajectories", trajectory_tab(tables, terms)))
    return tabs
