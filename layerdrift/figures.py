"""Plotly figures built from the result tables (never from raw arrays): the report and the dashboard share them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CATEGORY_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
PAIR_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
FLOOR_COLOUR = "#999999"
LAYOUT = dict(template="plotly_white", font=dict(size=13), margin=dict(l=70, r=30, t=60, b=60))


def category_colours(categories: list[str]) -> dict[str, str]:
    return {c: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, c in enumerate(dict.fromkeys(categories))}


def pair_colours(pairs: list[str]) -> dict[str, str]:
    return {p: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, p in enumerate(pairs)}


def _hex_to_rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def top_drifters_bar(top: pd.DataFrame, pair: str, categories: list[str], layer_label: str) -> go.Figure:
    """Horizontal bars of the top-N drifters of one pair, coloured by category."""
    t = top[top["pair"] == pair].sort_values("rank", ascending=False)
    colours = category_colours(categories)
    fig = go.Figure()
    for cat in dict.fromkeys(categories):
        sel = t[t["category"] == cat]
        if sel.empty:
            continue
        fig.add_trace(
            go.Bar(
                x=sel["drift"],
                y=sel["term"],
                orientation="h",
                name=cat,
                marker_color=colours[cat],
                customdata=np.stack([sel["percentile"], sel["rank"]], axis=1),
                hovertemplate="%{y}<br>drift %{x:.4f}<br>percentile %{customdata[0]:.1f}<br>rank "
                "%{customdata[1]}<extra>" + cat + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title=f"Top {len(t)} drifters, {pair} (layer {layer_label})",
        xaxis_title="cosine drift (1 − cos)",
        yaxis=dict(categoryorder="array", categoryarray=list(t["term"]), tickfont=dict(size=11)),
        height=max(420, 22 * len(t) + 140),
        legend_title="category",
        barmode="overlay",
    )
    return fig


def category_comparison(categories_table: pd.DataFrame, layer_label: str) -> go.Figure:
    """Mean drift per category for every pair, with bootstrap 95% CIs."""
    fig = go.Figure()
    colours = pair_colours(list(dict.fromkeys(categories_table["pair"])))
    for pair, t in categories_table.groupby("pair", sort=False):
        fig.add_trace(
            go.Bar(
                x=t["category"],
                y=t["mean"],
                name=pair,
                marker_color=FLOOR_COLOUR if t["floor"].iloc[0] else colours[pair],
                error_y=dict(
                    type="data", symmetric=False, array=t["ci_high"] - t["mean"], arrayminus=t["mean"] - t["ci_low"]
                ),
                hovertemplate="%{x}<br>mean %{y:.4f}<extra>" + pair + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        barmode="group",
        title=f"Mean drift by category (layer {layer_label}, 95% bootstrap CI)",
        yaxis_title="mean cosine drift",
        yaxis_type="log",
        legend_title="pair",
        height=480,
    )
    return fig


def category_violins(
    drift: pd.DataFrame, pairs: list[str], layer: int, categories: list[str], layer_label: str
) -> go.Figure:
    """Distribution of drift per category, one subplot per pair (scales differ by orders of magnitude)."""
    colours = category_colours(categories)
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=pairs, horizontal_spacing=0.06)
    for col, pair in enumerate(pairs, start=1):
        d = drift[(drift["pair"] == pair) & (drift["layer"] == layer)]
        for cat in dict.fromkeys(categories):
            sel = d[d["category"] == cat]
            fig.add_trace(
                go.Violin(
                    x=[cat] * len(sel),
                    y=sel["drift"],
                    name=cat,
                    line_color=colours[cat],
                    box_visible=True,
                    meanline_visible=True,
                    points="outliers",
                    text=sel["term"],
                    hovertemplate="%{text}<br>drift %{y:.4f}<extra>" + cat + "</extra>",
                    showlegend=False,
                    legendgroup=cat,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        **LAYOUT,
        title=f"Drift distribution per category (layer {layer_label})",
        height=480,
        width=max(700, 420 * len(pairs)),
    )
    fig.update_yaxes(title_text="cosine drift", row=1, col=1)
    return fig


def _layer_ticks(layers: pd.DataFrame) -> dict:
    """About 16 tick labels along the residual points, always including the first and the last."""
    labels = layers.drop_duplicates("layer").sort_values("layer")
    step = max(1, len(labels) // 16)
    keep = labels.iloc[sorted(set(range(0, len(labels), step)) | {len(labels) - 1})]
    return dict(tickmode="array", tickvals=keep["layer"].tolist(), ticktext=keep["label"].astype(str).tolist())


def _band(fig: go.Figure, x, lo, hi, colour: str, name: str, row: int | None = None, col: int | None = None) -> None:
    kw = dict(row=row, col=col) if row else {}
    fig.add_trace(
        go.Scatter(
            x=list(x) + list(x)[::-1],
            y=list(hi) + list(lo)[::-1],
            fill="toself",
            fillcolor=_hex_to_rgba(colour, 0.18),
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        ),
        **kw,
    )


def layer_curves(
    layers: pd.DataFrame,
    metric: str,
    title: str,
    yaxis: str,
    log: bool = False,
    group: str = "pair",
    band: tuple[str, str] | None = None,
) -> go.Figure:
    """A per-layer metric for every group (pair or category) with its 95% band; rows with floor=True dashed grey."""
    fig = go.Figure()
    colours = (
        pair_colours(list(dict.fromkeys(layers[group])))
        if group == "pair"
        else category_colours(list(dict.fromkeys(layers[group])))
    )
    lo, hi = band or (f"{metric.removesuffix('_mean')}_ci_low", f"{metric.removesuffix('_mean')}_ci_high")
    for name, t in layers.groupby(group, sort=False):
        if metric not in t or t[metric].isna().all():
            continue
        if log:  # exact zeros (e.g. an unquantized embedding) have no place on a log axis
            t = t.assign(**{c: t[c].where(t[c] > 0) for c in (metric, lo, hi) if c in t})
        floor = bool(t["floor"].iloc[0]) if "floor" in t else False
        colour = FLOOR_COLOUR if floor else colours[name]
        if lo in t:
            _band(fig, t["layer"], t[lo], t[hi], colour, name)
        fig.add_trace(
            go.Scatter(
                x=t["layer"],
                y=t[metric],
                mode="lines+markers",
                name=f"{name}" + (" (noise floor)" if floor and "floor" not in str(name) else ""),
                line=dict(color=colour, dash="dash" if floor else "solid"),
                marker=dict(size=5),
                legendgroup=name,
                customdata=t["label"],
                hovertemplate="layer %{customdata}<br>%{y:.4g}<extra>" + str(name) + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title=title,
        yaxis_title=yaxis,
        height=460,
        xaxis=dict(title="residual point (embed, block outputs, final norm)", **_layer_ticks(layers)),
    )
    if log:
        fig.update_yaxes(type="log")
    return fig


def cka_curves(layers: pd.DataFrame) -> go.Figure:
    """Same-layer CKA per pair: biased (solid) and debiased (dotted)."""
    fig = go.Figure()
    colours = pair_colours(list(dict.fromkeys(layers["pair"])))
    for pair, t in layers.groupby("pair", sort=False):
        colour = FLOOR_COLOUR if t["floor"].iloc[0] else colours[pair]
        fig.add_trace(
            go.Scatter(
                x=t["layer"],
                y=t["cka"],
                mode="lines+markers",
                name=f"{pair}",
                line=dict(color=colour),
                marker=dict(size=5),
                legendgroup=pair,
                customdata=t["label"],
                hovertemplate="layer %{customdata}<br>CKA %{y:.4f}<extra>" + pair + "</extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t["layer"],
                y=t["cka_debiased"],
                mode="lines",
                name=f"{pair} (debiased)",
                line=dict(color=colour, dash="dot"),
                legendgroup=pair,
                customdata=t["label"],
                hovertemplate="layer %{customdata}<br>debiased CKA %{y:.4f}<extra>" + pair + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title="Same-layer linear CKA between variants",
        yaxis_title="CKA",
        height=460,
        xaxis=dict(title="residual point", **_layer_ticks(layers)),
    )
    return fig


def cka_heatmap(cross: pd.DataFrame, pair: str, debiased: bool = False) -> go.Figure:
    """Cross-layer CKA between the reference (rows) and a variant (columns)."""
    t = cross[cross["pair"] == pair]
    col = "cka_debiased" if debiased else "cka"
    m = t.pivot(index="layer_a", columns="layer_b", values=col)
    la = t.drop_duplicates("layer_a").sort_values("layer_a")["label_a"].tolist()
    lb = t.drop_duplicates("layer_b").sort_values("layer_b")["label_b"].tolist()
    a, b = pair.split("→")
    fig = go.Figure(
        go.Heatmap(
            z=m.values,
            x=lb,
            y=la,
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar=dict(title="CKA"),
            hovertemplate=f"{a} %{{y}} × {b} %{{x}}<br>CKA %{{z:.4f}}<extra></extra>",
        )
    )
    fig.update_layout(
        **LAYOUT,
        title=f"Cross-layer {'debiased ' if debiased else ''}CKA: {pair}",
        xaxis_title=f"{b} layer",
        yaxis_title=f"{a} layer",
        height=620,
        width=680,
        xaxis=dict(type="category", tickangle=0, nticks=16),
        yaxis=dict(type="category", nticks=16, autorange="reversed"),
    )
    return fig


def effective_rank_curves(ranks: pd.DataFrame) -> go.Figure:
    """RankMe (solid) and Rényi ranks per variant and layer."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["RankMe (entropy effective rank)", "Rényi rank: dotted α=0.5, dashed α=2, long-dash α=∞"],
        horizontal_spacing=0.1,
    )
    colours = pair_colours(list(dict.fromkeys(ranks["variant"])))
    dashes = {"renyi_0.5": "dot", "renyi_2": "dash", "renyi_inf": "longdash"}
    for v, t in ranks.groupby("variant", sort=False):
        fig.add_trace(
            go.Scatter(
                x=t["layer"],
                y=t["rankme"],
                name=v,
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=colours[v]),
                legendgroup=v,
                customdata=t["label"],
                hovertemplate="layer %{customdata}<br>RankMe %{y:.2f}<extra>" + v + "</extra>",
            ),
            row=1,
            col=1,
        )
        for m, dash in dashes.items():
            fig.add_trace(
                go.Scatter(
                    x=t["layer"],
                    y=t[m],
                    name=f"{v} {m.replace('renyi_', 'α=')}",
                    mode="lines",
                    line=dict(color=colours[v], dash=dash),
                    legendgroup=v,
                    showlegend=False,
                    customdata=t["label"],
                    hovertemplate="layer %{customdata}<br>" + m + " %{y:.2f}<extra>" + v + "</extra>",
                ),
                row=1,
                col=2,
            )
    fig.update_layout(**LAYOUT, title="Effective rank per layer (centred activations)", height=460, width=1100)
    fig.update_xaxes(title_text="residual point index")
    return fig


def umap_trajectories(
    proj: pd.DataFrame,
    drift: pd.DataFrame,
    reference: str,
    variant: str,
    pair: str,
    layer: int,
    terms: list[str],
    categories: list[str],
    method: str = "umap",
) -> go.Figure:
    """Reference points with an arrow to the same concept in the variant, coloured by drift."""
    p = proj[(proj["layer"] == layer) & (proj["method"] == method)]
    r = p[p["variant"] == reference].sort_values("concept")
    v = p[p["variant"] == variant].sort_values("concept")
    d = drift[(drift["pair"] == pair) & (drift["layer"] == layer)].sort_values("concept")
    dv = d["drift"].to_numpy() if len(d) else np.zeros(len(r))
    fig = go.Figure()
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(r[["x", "y"]].to_numpy(), v[["x", "y"]].to_numpy()):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line=dict(color="rgba(80,80,80,0.35)", width=1),
            hoverinfo="skip",
            showlegend=False,
        )
    )
    hover = [f"{t}<br>{c}<br>drift {x:.4f}" for t, c, x in zip(terms, categories, dv)]
    fig.add_trace(
        go.Scatter(
            x=r["x"],
            y=r["y"],
            mode="markers",
            name=reference,
            marker=dict(size=6, color="white", line=dict(color="#333", width=1)),
            text=hover,
            customdata=r["concept"],
            hovertemplate="%{text}<extra>" + reference + "</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=v["x"],
            y=v["y"],
            mode="markers",
            name=variant,
            text=hover,
            customdata=v["concept"],
            hovertemplate="%{text}<extra>" + variant + "</extra>",
            marker=dict(size=8, color=dv, colorscale="Inferno", colorbar=dict(title="drift"), symbol="triangle-up"),
        )
    )
    fig.update_layout(
        **LAYOUT,
        title=f"Joint {method.upper()}: {reference} → {variant} (layer {layer_label_of(p)})",
        height=620,
        width=760,
        xaxis_title=f"{method.upper()} 1",
        yaxis_title=f"{method.upper()} 2",
        legend=dict(x=0, y=1, bgcolor="rgba(255,255,255,0.7)"),
    )
    return fig


def umap_by_category(
    proj: pd.DataFrame, layer: int, terms: list[str], categories: list[str], method: str = "umap"
) -> go.Figure:
    """All variants in the shared map, coloured by category, one marker symbol per variant."""
    p = proj[(proj["layer"] == layer) & (proj["method"] == method)]
    colours = category_colours(categories)
    symbols = ["circle", "triangle-up", "square", "diamond", "cross", "x", "star"]
    cats = np.asarray(categories)
    fig = go.Figure()
    for vi, (variant, t) in enumerate(p.groupby("variant", sort=False)):
        t = t.sort_values("concept")
        for cat in dict.fromkeys(categories):
            sel = t[cats[t["concept"].to_numpy()] == cat]
            fig.add_trace(
                go.Scatter(
                    x=sel["x"],
                    y=sel["y"],
                    mode="markers",
                    name=f"{cat} · {variant}",
                    legendgroup=cat,
                    marker=dict(
                        color=colours[cat],
                        symbol=symbols[vi % len(symbols)],
                        size=7,
                        opacity=0.75,
                        line=dict(width=0.5, color="white"),
                    ),
                    text=[terms[i] for i in sel["concept"]],
                    customdata=sel["concept"],
                    hovertemplate="%{text}<extra>" + f"{cat} · {variant}" + "</extra>",
                )
            )
    fig.update_layout(
        **LAYOUT,
        title=f"Joint {method.upper()} by category (layer {layer_label_of(p)})",
        height=620,
        width=860,
        xaxis_title=f"{method.upper()} 1",
        yaxis_title=f"{method.upper()} 2",
    )
    return fig


def layer_label_of(p: pd.DataFrame) -> str:
    return str(p["label"].iloc[0]) if len(p) else "?"


def concept_layer_curves(drift: pd.DataFrame, concept: int, term: str, metric: str, pairs: list[dict]) -> go.Figure:
    """One concept's drift (or Jaccard) across layers for every pair; floor pairs dashed grey."""
    d = drift[drift["concept"] == concept]
    fig = go.Figure()
    colours = pair_colours([p["label"] for p in pairs])
    for p in pairs:
        t = d[d["pair"] == p["label"]].sort_values("layer")
        if t.empty:
            continue
        y = t[metric].where(t[metric] > 0) if metric == "drift" else t[metric]
        fig.add_trace(
            go.Scatter(
                x=t["layer"],
                y=y,
                mode="lines+markers",
                name=p["label"],
                marker=dict(size=4),
                line=dict(
                    color=FLOOR_COLOUR if p["floor"] else colours[p["label"]], dash="dash" if p["floor"] else "solid"
                ),
                customdata=np.stack([t["label"], t["percentile"]], axis=1),
                hovertemplate="layer %{customdata[0]}<br>%{y:.4g}<br>percentile %{customdata[1]:.1f}<extra>"
                + p["label"]
                + "</extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title=f"{term}: {'cosine drift' if metric == 'drift' else 'k-NN Jaccard'} across layers",
        height=330,
        yaxis=dict(
            title="drift (log)" if metric == "drift" else "Jaccard", type="log" if metric == "drift" else "linear"
        ),
        xaxis=dict(title="residual point", **(_layer_ticks(d) if len(d) else {})),
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


# ---- activation patching -----------------------------------------------------------------
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
    grid = t.pivot_table(index="layer", columns="position", values=metric, aggfunc="first").reindex(columns=order)
    normalised = metric.startswith("normalised")
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[("token " + p) if p != "all" else "all tokens" for p in order],
            y=grid.index,
            colorscale="RdBu_r",
            zmid=0,
            zmin=-1 if normalised else None,
            zmax=1 if normalised else None,
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
        g = g.sort_values("layer")
        fig.add_trace(
            go.Scatter(
                x=g["layer"],
                y=g[metric],
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
        title=f"Patching per block ({where}): {PATCH_METRICS[metric]}",
        xaxis_title="block",
        yaxis_title=metric.replace("_", " "),
        height=460,
        legend_title="source into receiver (component)",
    )
    return fig


# ---- behaviour vectors --------------------------------------------------------------------
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
                h = g[np.sign(g["scale"]) == sign].sort_values("layer")
                fig.add_trace(
                    go.Scatter(
                        x=h["layer"],
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
