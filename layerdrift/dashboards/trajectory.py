"""Figures of checkpoint trajectories and persistent homology, from the trajectory / topology tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.dashboards.style import FLOOR_COLOUR, LAYOUT, PAIR_COLOURS, empty_figure, hex_to_rgba

METRICS = {
    "drift_start": ("Mean cosine drift from step 0", "Viridis", False),
    "drift_prev": ("Mean cosine drift from the previous checkpoint", "Viridis", False),
    "cka_start": ("Linear CKA with step 0", "Viridis_r", True),
    "cka_prev": ("Linear CKA with the previous checkpoint", "Viridis_r", True),
    "jaccard_start": ("k-NN Jaccard overlap with step 0", "Viridis_r", True),
    "rankme": ("Effective rank (RankMe)", "Cividis", False),
}
VELOCITY_METRICS = {
    "drift": "representational velocity (mean cosine drift)",
    "wasserstein_h1": "topological velocity (W2 between H1 diagrams)",
    "wasserstein_h0": "topological velocity (W2 between H0 diagrams)",
}


def series_colours(series: list[str]) -> dict[str, str]:
    return {s: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, s in enumerate(dict.fromkeys(series))}


def trajectory_heatmaps(traj: pd.DataFrame, metric: str) -> go.Figure:
    """Layer x checkpoint map of one metric, one panel per series side by side on one colour scale."""
    title, scale, _ = METRICS[metric]
    series = list(dict.fromkeys(traj["series"]))
    fig = make_subplots(rows=1, cols=len(series), subplot_titles=series, shared_yaxes=True, horizontal_spacing=0.03)
    values = traj[metric].to_numpy(dtype=float)
    lo, hi = (
        np.nanmin(values) if np.isfinite(values).any() else 0,
        np.nanmax(values) if np.isfinite(values).any() else 1,
    )
    for i, s in enumerate(series, start=1):
        t = traj[traj["series"] == s]
        grid = t.pivot_table(index="layer", columns="checkpoint", values=metric, aggfunc="first", dropna=False)
        labels = t.drop_duplicates("layer").set_index("layer")["label"].reindex(grid.index).tolist()
        steps = t.drop_duplicates("checkpoint").set_index("checkpoint")["step"].reindex(grid.columns).tolist()
        fig.add_trace(
            go.Heatmap(
                z=grid.to_numpy(dtype=float),
                x=[str(s_) for s_ in steps],
                y=labels,
                colorscale=scale,
                zmin=lo,
                zmax=hi,
                showscale=i == len(series),
                colorbar=dict(title=metric),
                hovertemplate="step %{x}<br>point %{y}<br>" + metric + " %{z:.4f}<extra>" + s + "</extra>",
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="training step", type="category", row=1, col=i)
    fig.update_yaxes(title_text="residual point", type="category", row=1, col=1)
    fig.update_layout(
        **LAYOUT,
        title=f"{title}, per residual point and checkpoint",
        height=560,
        width=max(700, 330 * len(series) + 120),
    )
    return fig


def velocity_curves(band: pd.DataFrame, concentration: pd.DataFrame, layer: str = "all") -> go.Figure:
    """Velocity per checkpoint interval for every series, with the band of random checkpoint orderings; one panel per
    metric."""
    metrics = [m for m in VELOCITY_METRICS if m in set(band["metric"])]
    fig = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[VELOCITY_METRICS[m] for m in metrics], horizontal_spacing=0.07
    )
    colours = series_colours(list(band["series"]))
    for col, metric in enumerate(metrics, start=1):
        b = band[(band["metric"] == metric) & (band["label"] == layer)]
        for s, t in b.groupby("series", sort=False):
            t = t.sort_values("interval")
            x = [f"{a}→{c}" for a, c in zip(t["step_from"], t["step_to"])]
            c = concentration[
                (concentration["series"] == s) & (concentration["metric"] == metric) & (concentration["label"] == layer)
            ]
            label = f"{s} (C = {c['c'].iloc[0]:.2f}, p = {c['p'].iloc[0]:.3f})" if len(c) else s
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=list(t["q975"]) + list(t["q025"])[::-1],
                    mode="lines",
                    fill="toself",
                    fillcolor=hex_to_rgba(colours[s], 0.10),
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=s,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=t["velocity"],
                    mode="lines+markers",
                    name=label,
                    line=dict(color=colours[s], width=2.5),
                    legendgroup=s,
                    showlegend=col == 1 or len(metrics) == 1,
                    hovertemplate="steps %{x}<br>velocity %{y:.4g}<extra>" + s + "</extra>",
                ),
                row=1,
                col=col,
            )
        floor = b["floor"].dropna() if "floor" in b else pd.Series(dtype=float)
        if len(floor):
            fig.add_hline(y=float(floor.iloc[0]), line=dict(color="#888", dash="dash", width=1.5), row=1, col=col)
        fig.update_xaxes(title_text="checkpoint interval (steps)", type="category", row=1, col=col)
    where = "mean over residual points" if layer == "all" else f"residual point {layer}"
    fig.update_layout(
        **{**LAYOUT, "margin": dict(l=70, r=30, t=100, b=60)},
        title=f"Velocity along training ({where})<br><sup>bands: 95% of random checkpoint "
        "orderings; C = share of the change in the first third of the intervals; dashed: noise floor</sup>",
        height=500,
        width=max(760, 520 * len(metrics)),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def concentration_by_layer(concentration: pd.DataFrame) -> go.Figure:
    """Early-concentration C per residual point for every series (filled markers: p < 0.05), one panel per metric."""
    c = concentration[concentration["label"] != "all"].dropna(subset=["c"])
    metrics = [m for m in VELOCITY_METRICS if m in set(c["metric"])]
    fig = make_subplots(
        rows=1,
        cols=len(metrics),
        subplot_titles=[VELOCITY_METRICS[m].split(" (")[0] + f" ({m})" for m in metrics],
        shared_yaxes=True,
        horizontal_spacing=0.05,
    )
    colours = series_colours(list(c["series"]))
    for col, metric in enumerate(metrics, start=1):
        for s, t in c[c["metric"] == metric].groupby("series", sort=False):
            sig = t["p"] < 0.05
            fig.add_trace(
                go.Scatter(
                    x=t["label"],
                    y=t["c"],
                    mode="lines+markers",
                    name=s,
                    legendgroup=s,
                    showlegend=col == 1,
                    line=dict(color=colours[s]),
                    marker=dict(size=9, symbol=np.where(sig, "circle", "circle-open")),
                    customdata=t["p"],
                    hovertemplate="point %{x}<br>C %{y:.3f}<br>p %{customdata:.4f}<extra>" + s + "</extra>",
                ),
                row=1,
                col=col,
            )
        if len(c[c["metric"] == metric]):
            fig.add_hline(y=float(c["expected"].iloc[0]), line=dict(color="#888", dash="dash"), row=1, col=col)
        fig.update_xaxes(title_text="residual point", type="category", row=1, col=col)
    fig.update_yaxes(title_text="C (share of change in the first third)", range=[0, 1.02], row=1, col=1)
    fig.update_layout(
        **LAYOUT,
        title="Where along training the change happens, by depth (dashed: even change; filled: "
        "p < 0.05 vs random orderings)",
        height=460,
        width=max(760, 480 * len(metrics)),
    )
    return fig


def persistence_diagrams(bars: pd.DataFrame, variants: list[str], layer: int) -> go.Figure:
    """Birth-death diagrams (H0 and H1, first subsample) of several variants at one residual point."""
    b = bars[bars["layer"] == layer]
    variants = [v for v in variants if v in set(b["variant"])]
    fig = make_subplots(rows=1, cols=len(variants), subplot_titles=variants, shared_yaxes=True, horizontal_spacing=0.03)
    top = float(b["death"].max()) * 1.05 if len(b) else 1.0
    for i, v in enumerate(variants, start=1):
        for dim, colour in ((0, "#4c72b0"), (1, "#dd8452")):
            t = b[(b["variant"] == v) & (b["dim"] == dim)]
            fig.add_trace(
                go.Scatter(
                    x=t["birth"],
                    y=t["death"],
                    mode="markers",
                    name=f"H{dim}",
                    legendgroup=f"H{dim}",
                    showlegend=i == 1,
                    marker=dict(color=colour, size=6, opacity=0.7),
                    hovertemplate="birth %{x:.3f}<br>death %{y:.3f}<extra>H" + str(dim) + "</extra>",
                ),
                row=1,
                col=i,
            )
        fig.add_trace(
            go.Scatter(
                x=[0, top],
                y=[0, top],
                mode="lines",
                line=dict(color="#999", dash="dot"),
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="birth", range=[0, top], row=1, col=i)
    fig.update_yaxes(title_text="death", range=[0, top], row=1, col=1)
    label = b["label"].iloc[0] if len(b) else layer
    fig.update_layout(
        **{**LAYOUT, "margin": dict(l=70, r=30, t=110, b=60)},
        title=f"Persistence diagrams at residual point {label}<br><sup>Vietoris-Rips on "
        "final-token states, one subsample</sup>",
        height=430,
        width=max(700, 300 * len(variants) + 100),
    )
    return fig


def topology_pair_distances(dist: pd.DataFrame, dim: int = 1) -> go.Figure:
    """W2 between the diagrams of the reference and every other headline variant (and each noise floor, dashed), per
    residual point."""
    d = dist[dist["kind"].isin(["pair", "floor"]) & (dist["dim"] == dim)]
    floors = d[d["kind"] == "floor"]
    reference = floors["a"].iloc[0] if len(floors) else d["a"].iloc[0]
    d = d[d["a"] == reference]
    fig = go.Figure()
    colours = {b: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, b in enumerate(dict.fromkeys(d[d["kind"] == "pair"]["b"]))}
    for (b, kind), t in d.groupby(["b", "kind"], sort=False):
        name = f"{reference}→{b}" + (" (noise floor)" if kind == "floor" else "")
        line = dict(color=FLOOR_COLOUR, dash="dash") if kind == "floor" else dict(color=colours[b])
        fig.add_trace(
            go.Scatter(
                x=t["label"],
                y=t["wasserstein"],
                mode="lines+markers",
                name=name,
                line=line,
                error_y=dict(type="data", array=t["wasserstein_sd"], thickness=1),
                customdata=t["bottleneck"],
                hovertemplate="point %{x}<br>W2 %{y:.4f}<br>bottleneck %{customdata:.4f}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title=f"Topological distance from {reference}: W2 between H{dim} diagrams per residual "
        "point<br><sup>mean ± sd over paired subsamples; "
        "every pair is in the table topology_distances</sup>",
        xaxis_title="residual point",
        yaxis_title=f"Wasserstein-2 (H{dim}, log)",
        yaxis_type="log",
        xaxis_type="category",
        height=480,
        width=1000,
    )
    return fig


def topology_summary_curves(
    topo: pd.DataFrame, series_of: dict[str, str], stat: str = "total_persistence", dim: int = 1
) -> go.Figure:
    """One H-dim diagram summary per residual point: every headline variant, and each series' checkpoints fading from
    light
    (early) to dark (late)."""
    t = topo[(topo["stat"] == stat) & (topo["dim"] == dim)]
    fig = go.Figure()
    colours = series_colours(list(dict.fromkeys(series_of.values())))
    plain = [v for v in dict.fromkeys(t["variant"]) if v not in series_of]
    for i, v in enumerate(plain):
        g = t[t["variant"] == v]
        fig.add_trace(
            go.Scatter(
                x=g["label"],
                y=g["mean"],
                mode="lines+markers",
                name=v,
                line=dict(color="#222" if i == 0 else "#999", width=3, dash="solid" if i == 0 else "dash"),
                error_y=dict(type="data", array=g["sd"], thickness=1),
            )
        )
    for s in dict.fromkeys(series_of.values()):
        members = [v for v in dict.fromkeys(t["variant"]) if series_of.get(v) == s]
        for j, v in enumerate(members):
            g = t[t["variant"] == v]
            alpha = 0.25 + 0.75 * (j / max(1, len(members) - 1))
            fig.add_trace(
                go.Scatter(
                    x=g["label"],
                    y=g["mean"],
                    mode="lines",
                    name=v,
                    legendgroup=s,
                    showlegend=j == len(members) - 1,
                    line=dict(color=hex_to_rgba(colours[s], alpha), width=1.5),
                )
            )
    fig.update_layout(
        **LAYOUT,
        title=f"H{dim} {stat.replace('_', ' ')} per residual point<br><sup>mean ± sd over "
        "subsamples; each series fades from step 0 (light) to its last checkpoint "
        "(dark)</sup>",
        xaxis_title="residual point",
        yaxis_title=stat,
        xaxis_type="category",
        yaxis_type="log" if stat.startswith("total") else "linear",
        height=480,
        width=1000,
    )
    return fig


def checkpoint_umap(proj: pd.DataFrame) -> go.Figure:
    """The joint UMAP of every checkpoint: one panel per series, points coloured by training step, the headline variants
    in
    grey."""
    series = [s for s in dict.fromkeys(proj["series"]) if s]
    fig = make_subplots(
        rows=1, cols=max(1, len(series)), subplot_titles=series, shared_yaxes=True, horizontal_spacing=0.03
    )
    plain = proj[proj["series"] == ""]
    max_step = float(np.nanmax(proj["step"])) if proj["step"].notna().any() else 1.0
    for i, s in enumerate(series, start=1):
        fig.add_trace(
            go.Scattergl(
                x=plain["x"],
                y=plain["y"],
                mode="markers",
                marker=dict(color="#cccccc", size=4),
                name="headline variants",
                showlegend=i == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=i,
        )
        t = proj[proj["series"] == s]
        fig.add_trace(
            go.Scattergl(
                x=t["x"],
                y=t["y"],
                mode="markers",
                name=s,
                showlegend=False,
                customdata=np.stack([t["step"], t["concept"]], axis=1),
                marker=dict(
                    color=np.log2(1 + t["step"]),
                    colorscale="Plasma",
                    size=5,
                    cmin=0,
                    cmax=np.log2(1 + max_step),
                    showscale=i == len(series),
                    colorbar=dict(
                        title="step",
                        tickvals=np.log2(1 + np.array(sorted(set(t["step"])))),
                        ticktext=[str(int(x)) for x in sorted(set(t["step"]))],
                    ),
                ),
                hovertemplate="step %{customdata[0]}<br>concept %{customdata[1]}<extra>" + s + "</extra>",
            ),
            row=1,
            col=i,
        )
    label = proj["label"].iloc[0] if len(proj) else ""
    fig.update_layout(
        **LAYOUT,
        title=f"UMAP of every checkpoint's concept vectors (residual point {label}; one joint fit)",
        height=500,
        width=max(700, 360 * max(1, len(series)) + 100),
        legend=dict(orientation="h", y=-0.12),
    )
    return fig


class TrajectoryView(param.Parameterized):
    """Selection in the trajectory tab: series, metric, checkpoint (index in training order) and topology point."""

    series = param.Selector(objects=[])
    metric = param.Selector(default="drift_start", objects=list(METRICS))
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
        fig = trajectory_heatmaps(self.traj[self.traj["series"] == self.series], self.metric)
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
        colours = series_colours(list(self.traj["series"]))
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
            title=f"{METRICS[self.metric][0]}: checkpoint {self.checkpoint + 1} of every series "
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
            return empty_figure("no UMAP across checkpoints in this run")
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
            return empty_figure("no persistence diagrams in this run (trajectory.topology = false)")
        first = str(self.members()["variant"].iloc[0])
        fig = persistence_diagrams(self.bars, list(dict.fromkeys([first, self.variant])), self.layer)
        fig.update_layout(width=None, autosize=True, height=420)
        return fig

    def velocity(self) -> go.Figure:
        fig = velocity_curves(self.band, self.conc)
        fig.update_layout(width=None, autosize=True)
        return fig


def trajectory_tab(tables: dict[str, pd.DataFrame], terms: list[str] | None = None) -> pn.viewable.Viewable:
    view = TrajectoryView(tables, terms)
    series = pn.widgets.Select(label="series", options=view.param.series.objects, value=view.series, width=200)
    metric = pn.widgets.Select(
        label="metric", options={v[0]: k for k, v in METRICS.items()}, value=view.metric, width=320
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


def trajectory_figures(t: dict[str, pd.DataFrame]) -> dict[str, go.Figure]:
    """Checkpoint-series heatmaps, velocity curves with the permutation band, concentration by depth, topology and the
    checkpoint UMAP."""
    figs: dict[str, go.Figure] = {}
    traj, conc, band = t.get("trajectory"), t.get("concentration"), t.get("velocity_band")
    if traj is not None and len(traj):
        for metric in METRICS:
            figs[f"trajectory_{metric}"] = trajectory_heatmaps(traj, metric)
    if band is not None and len(band) and conc is not None:
        figs["trajectory_velocity"] = velocity_curves(band, conc)
        figs["trajectory_concentration"] = concentration_by_layer(conc)
    bars, topo, dist = t.get("persistence_diagrams"), t.get("topology"), t.get("topology_distances")
    series_of = {} if traj is None or traj.empty else dict(zip(traj["variant"], traj["series"]))
    if bars is not None and len(bars):
        layers = sorted(set(bars["layer"]))
        headline = [v for v in dict.fromkeys(bars["variant"]) if v not in series_of]
        finals = (
            []
            if traj is None or traj.empty
            else [g.sort_values("checkpoint")["variant"].iloc[-1] for _, g in traj.groupby("series", sort=False)]
        )
        shown = list(dict.fromkeys(headline + finals))[:6]
        figs["persistence_diagrams_middle"] = persistence_diagrams(bars, shown, layers[len(layers) // 2])
        figs["persistence_diagrams_final"] = persistence_diagrams(bars, shown, layers[-1])
    if topo is not None and len(topo):
        figs["topology_total_persistence_h1"] = topology_summary_curves(topo, series_of, "total_persistence", 1)
        figs["topology_entropy_h1"] = topology_summary_curves(topo, series_of, "persistent_entropy", 1)
    if dist is not None and len(dist) and (dist["kind"] == "pair").any():
        figs["topology_pair_distances"] = topology_pair_distances(dist, 1)
    proj = t.get("trajectory_projection")
    if proj is not None and len(proj) and (proj["series"] != "").any():
        figs["trajectory_umap"] = checkpoint_umap(proj)
    return figs


def figures(results: Any) -> dict[str, go.Figure]:
    return trajectory_figures(results.tables)


def tabs(results: Any, selection: Any = None) -> list[tuple[str, Any]]:
    if not len(results.tables.get("trajectory", ())):
        return []
    return [("Trajectories", trajectory_tab(results.tables, results.meta.get("terms")))]
