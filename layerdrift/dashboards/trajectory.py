"""Dashboard tab for checkpoint series: a checkpoint slider over the trajectory, topology and UMAP tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from layerdrift import figures_trajectory as TF
from layerdrift.figures import LAYOUT


class TrajectoryView(param.Parameterized):
    """Selection in the trajectory tab: series, metric, checkpoint (index in training order) and topology point."""

    series = param.Selector(objects=[])
    metric = param.Selector(default="drift_start", objects=list(TF.METRICS))
    checkpoint = param.Integer(default=0, bounds=(0, None))
    layer = param.Selector(objects=[])

    def __init__(self, tables: dict[str, pd.DataFrame], terms: list[str] | None = None, **params):
        self.traj = tables["trajectory"]
        self.band, self.conc = tables.get("velocity_band", pd.DataFrame()), tables.get("concentration", pd.DataFrame())
        self.bars, self.proj = (
            tables.get("persistence_diagrams", pd.DataFrame()),
            tables.get("trajectory_projection", pd.DataFrame()),
        )
        self.terms = terms
        self.param.series.objects = list(dict.fromkeys(self.traj["series"]))
        layers = sorted(set(self.bars["layer"])) if len(self.bars) else [0]
        self.param.layer.objects = layers
        params.setdefault("series", self.param.series.objects[0])
        params.setdefault("layer", layers[-1])
        super().__init__(**params)

    def members(self) -> pd.DataFrame:
        """(checkpoint, step, variant) of the selected series in training order."""
        t = self.traj[self.traj["series"] == self.series]
        return (
            t.drop_duplicates("checkpoint")
            .sort_values("checkpoint")[["checkpoint", "step", "variant"]]
            .reset_index(drop=True)
        )

    def slider_options(self) -> dict[str, int]:
        return {f"step {int(r.step)}": int(r.checkpoint) for r in self.members().itertuples()}

    @property
    def variant(self) -> str:
        m = self.members()
        return str(m["variant"].iloc[min(self.checkpoint, len(m) - 1)])

    def heatmap(self) -> go.Figure:
        fig = TF.trajectory_heatmaps(self.traj[self.traj["series"] == self.series], self.metric)
        # on a category axis a shape's x is the category's position, i.e. the checkpoint index
        fig.add_shape(
            type="rect",
            x0=self.checkpoint - 0.5,
            x1=self.checkpoint + 0.5,
            y0=0,
            y1=1,
            yref="paper",
            line=dict(color="#ff00ff", width=3),
        )
        fig.update_layout(width=None, autosize=True, height=520)
        return fig

    def profile(self) -> go.Figure:
        """The metric per residual point at this checkpoint index, for every series side by side."""
        t = self.traj[self.traj["checkpoint"] == self.checkpoint]
        colours = TF.series_colours(list(self.traj["series"]))
        fig = go.Figure()
        for s, g in t.groupby("series", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=g["label"],
                    y=g[self.metric],
                    mode="lines+markers",
                    name=f"{s} (step {int(g['step'].iloc[0])})",
                    line=dict(color=colours[s], width=3 if s == self.series else 1.5),
                )
            )
        step = int(self.members()["step"].iloc[min(self.checkpoint, len(self.members()) - 1)])
        fig.update_layout(
            **LAYOUT,
            title=f"{TF.METRICS[self.metric][0]}: checkpoint {self.checkpoint + 1} of every series "
            f"({self.series}: step {step})",
            xaxis_title="residual point",
            yaxis_title=self.metric,
            xaxis_type="category",
            height=420,
        )
        fig.update_layout(width=None, autosize=True)
        return fig

    def cloud(self) -> go.Figure:
        """The joint UMAP: every checkpoint of the series in grey, this checkpoint's concepts in colour, joined to their
        step-0 positions."""
        fig = go.Figure()
        p = self.proj[self.proj["series"] == self.series] if len(self.proj) else self.proj
        if p is None or p.empty:
            fig.add_annotation(
                text="no UMAP across checkpoints in this run", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
            )
            return fig
        here, start = p[p["variant"] == self.variant], p[p["variant"] == self.members()["variant"].iloc[0]]
        fig.add_trace(
            go.Scattergl(
                x=p["x"],
                y=p["y"],
                mode="markers",
                marker=dict(color="#dddddd", size=4),
                name="all checkpoints",
                hoverinfo="skip",
            )
        )
        xs, ys = (
            np.c_[start["x"].to_numpy(), here["x"].to_numpy(), np.full(len(here), np.nan)].ravel(),
            np.c_[start["y"].to_numpy(), here["y"].to_numpy(), np.full(len(here), np.nan)].ravel(),
        )
        fig.add_trace(
            go.Scattergl(
                x=xs,
                y=ys,
                mode="lines",
                line=dict(color="rgba(120,120,120,0.35)", width=1),
                name="moved from step 0",
                hoverinfo="skip",
            )
        )
        names = [self.terms[i] if self.terms and i < len(self.terms) else str(i) for i in here["concept"]]
        fig.add_trace(
            go.Scattergl(
                x=here["x"],
                y=here["y"],
                mode="markers",
                marker=dict(color="#d62728", size=6),
                name=self.variant,
                text=names,
                hovertemplate="%{text}<extra>" + self.variant + "</extra>",
            )
        )
        fig.update_layout(
            **LAYOUT,
            title=f"UMAP across checkpoints ({self.series}, point {p['label'].iloc[0]}): {self.variant}",
            height=520,
            legend=dict(orientation="h", y=-0.1),
        )
        fig.update_layout(width=None, autosize=True)
        return fig

    def diagram(self) -> go.Figure:
        if self.bars.empty:
            fig = go.Figure()
            fig.add_annotation(
                text="no persistence diagrams in this run (trajectory.topology = false)",
                showarrow=False,
                x=0.5,
                y=0.5,
                xref="paper",
                yref="paper",
            )
            return fig
        first = str(self.members()["variant"].iloc[0])
        fig = TF.persistence_diagrams(self.bars, list(dict.fromkeys([first, self.variant])), self.layer)
        fig.update_layout(width=None, autosize=True, height=420)
        return fig

    def velocity(self) -> go.Figure:
        fig = TF.velocity_curves(self.band, self.conc)
        fig.update_layout(width=None, autosize=True)
        return fig


def trajectory_tab(tables: dict[str, pd.DataFrame], terms: list[str] | None = None) -> pn.viewable.Viewable:
    view = TrajectoryView(tables, terms)
    series = pn.widgets.Select(label="series", options=view.param.series.objects, value=view.series, width=200)
    metric = pn.widgets.Select(
        label="metric", options={v[0]: k for k, v in TF.METRICS.items()}, value=view.metric, width=320
    )
    point_labels = dict(zip(view.bars["layer"], view.bars["label"])) if len(view.bars) else {}
    layer = pn.widgets.Select(
        label="topology point",
        options={str(point_labels.get(p, p)): p for p in view.param.layer.objects},
        value=view.layer,
        width=140,
    )
    slider = pn.widgets.DiscreteSlider(
        name="checkpoint", options=view.slider_options(), value=0, width=420, css_classes=["checkpoint-slider"]
    )
    heat = pn.pane.Plotly(view.heatmap(), sizing_mode="stretch_width", css_classes=["trajectory-map"])
    profile = pn.pane.Plotly(view.profile(), sizing_mode="stretch_width", css_classes=["trajectory-profile"])
    cloud = pn.pane.Plotly(view.cloud(), sizing_mode="stretch_width", css_classes=["trajectory-cloud"])
    diagram = pn.pane.Plotly(view.diagram(), sizing_mode="stretch_width")
    velocity = pn.pane.Plotly(view.velocity(), sizing_mode="stretch_width") if len(view.band) else pn.pane.Markdown("")

    def redraw(*_):
        with pn.io.hold():
            heat.object, profile.object, cloud.object, diagram.object = (
                view.heatmap(),
                view.profile(),
                view.cloud(),
                view.diagram(),
            )

    def new_series(*_):
        options = view.slider_options()
        with pn.io.hold():
            view.checkpoint = min(view.checkpoint, len(options) - 1)
            slider.param.update(options=options, value=view.checkpoint)
            redraw()

    series.param.watch(lambda e: setattr(view, "series", e.new), "value")
    metric.param.watch(lambda e: setattr(view, "metric", e.new), "value")
    layer.param.watch(lambda e: setattr(view, "layer", e.new), "value")
    slider.param.watch(lambda e: setattr(view, "checkpoint", int(e.new)), "value")
    view.param.watch(new_series, ["series"])
    view.param.watch(redraw, ["metric", "checkpoint", "layer"])
    note = pn.pane.Markdown(
        "Drag the **checkpoint** slider to step through training: the map marks the "
        "checkpoint, the profile compares every objective at the "
        "same checkpoint, the cloud shows where each concept has moved since step 0, and "
        "the diagram compares its topology with step 0."
    )
    return pn.Column(pn.Row(series, metric, layer, slider), note, heat, pn.Row(profile, diagram), cloud, velocity)
