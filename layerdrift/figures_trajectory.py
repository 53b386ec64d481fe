"""Figures of checkpoint trajectories and persistent homology, from the trajectory / topology tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.figures import FLOOR_COLOUR, LAYOUT, PAIR_COLOURS, _hex_to_rgba

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
        b = band[(band["metric"] == metric) & (band["layer"] == layer)]
        for s, t in b.groupby("series", sort=False):
            t = t.sort_values("interval")
            x = [f"{a}→{c}" for a, c in zip(t["step_from"], t["step_to"])]
            c = concentration[
                (concentration["series"] == s) & (concentration["metric"] == metric) & (concentration["layer"] == layer)
            ]
            label = f"{s} (C = {c['c'].iloc[0]:.2f}, p = {c['p'].iloc[0]:.3f})" if len(c) else s
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=list(t["q975"]) + list(t["q025"])[::-1],
                    mode="lines",
                    fill="toself",
                    fillcolor=_hex_to_rgba(colours[s], 0.10),
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
        fig.update_xaxes(title_text="checkpoint interval (steps)", type="category", row=1, col=col)
    where = "mean over residual points" if layer == "all" else f"residual point {layer}"
    fig.update_layout(
        **{**LAYOUT, "margin": dict(l=70, r=30, t=100, b=60)},
        title=f"Velocity along training ({where})<br><sup>bands: 95% of random checkpoint "
        "orderings; C = share of the change in the first third of the intervals</sup>",
        height=500,
        width=max(760, 520 * len(metrics)),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def concentration_by_layer(concentration: pd.DataFrame) -> go.Figure:
    """Early-concentration C per residual point for every series (filled markers: p < 0.05), one panel per metric."""
    c = concentration[concentration["layer"] != "all"].dropna(subset=["c"])
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
                    x=t["layer"],
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
                    line=dict(color=_hex_to_rgba(colours[s], alpha), width=1.5),
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


def trajectory_summary(concentration: pd.DataFrame, traj: pd.DataFrame) -> pd.DataFrame:
    """Per series: drift from step 0 at the last checkpoint, the step where half of it was reached, and C with its p
    (mean
    over points)."""
    rows = []
    for s, t in traj.groupby("series", sort=False):
        last = t[t["checkpoint"] == t["checkpoint"].max()]
        peak = last.loc[last["drift_start"].idxmax()]
        c = concentration[(concentration["series"] == s) & (concentration["layer"] == "all")].set_index("metric")
        final = concentration[
            (concentration["series"] == s)
            & (concentration["metric"] == "drift")
            & (concentration["layer"] == peak["label"])
        ]
        row = {
            "series": s,
            "checkpoints": int(t["checkpoint"].max()) + 1,
            "last step": int(last["step"].iloc[0]),
            "max drift": float(peak["drift_start"]),
            "at point": peak["label"],
            "half of it by step": float(final["half_distance_step"].iloc[0]) if len(final) else np.nan,
        }
        for metric, name in (("drift", "drift"), ("wasserstein_h1", "W2 H1")):
            if metric in c.index:
                row[f"C {name}"], row[f"p {name}"] = float(c.loc[metric, "c"]), float(c.loc[metric, "p"])
        if "drift" in c.index:
            row["C even"] = float(c.loc["drift", "expected"])
        rows.append(row)
    return pd.DataFrame(rows)


def topology_pair_table(dist: pd.DataFrame, dim: int = 1) -> pd.DataFrame:
    """Pairs of headline variants x residual points: W2 between H{dim} diagrams (the pair kind of
    ``topology_distances``)."""
    d = dist[dist["kind"].isin(["pair", "floor"]) & (dist["dim"] == dim)].assign(
        pair=lambda x: x["a"] + "→" + x["b"] + np.where(x["kind"] == "floor", " (floor)", "")
    )
    return (
        d.pivot_table(index="pair", columns="label", values="wasserstein", sort=False)
        .reset_index()
        .rename_axis(None, axis=1)
    )
