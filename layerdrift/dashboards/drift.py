"""Plotly figures built from the result tables (never from raw arrays): the report and the dashboard share them."""

from __future__ import annotations

import difflib
import html
import io
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.analyses.depth import positions_on
from layerdrift.analyses.pair_metrics import DRIFT, PAIR_METRICS, PairMetric
from layerdrift.core.naming import pair_key
from layerdrift.core.spreadsheet import to_csv
from layerdrift.dashboards.markup import md
from layerdrift.dashboards.selection import Selection, follow
from layerdrift.dashboards.style import (
    FLOOR_COLOUR,
    LAYOUT,
    TABLE_CSS,
    category_colours,
    empty_figure,
    grouped_ci_bars,
    layer_ticks,
    mark_layer,
    pair_colours,
    shade_band,
)

MAP_TAB, OVERVIEW_TAB = 0, 1  # the drift tab's sub-tabs
MAP_TRANSITION = dict(duration=250, easing="cubic-out")  # points glide to the next layer's places


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
    floors = categories_table.groupby("pair", sort=False)["floor"].first()
    colours = {p: FLOOR_COLOUR if floors[p] else c for p, c in pair_colours(list(floors.index)).items()}
    return grouped_ci_bars(
        categories_table,
        "category",
        "pair",
        colours,
        f"Mean drift by category (layer {layer_label}, 95% bootstrap CI)",
        "mean cosine drift",
        legend_title="pair",
        height=480,
    )


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
            shade_band(fig, t["layer"], t[lo], t[hi], colour, name)
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
        xaxis=dict(title="residual point (embed, block outputs, final norm)", **layer_ticks(layers)),
    )
    if log:
        fig.update_yaxes(type="log")
    return fig


def metric_curves(layers: pd.DataFrame, metric: PairMetric, settings: dict[str, Any]) -> go.Figure:
    """A registered pair metric along depth for every pair (band where it has one), with the metrics drawn with it
    as dotted lines of the same colour."""
    fig = layer_curves(layers, metric.column, metric.title.format(**settings), metric.axis, log=metric.log)
    colours = pair_colours(list(dict.fromkeys(layers["pair"])))
    for companion in (m for m in PAIR_METRICS if m.drawn_with == metric.name and m.column in layers):
        for pair, t in layers.groupby("pair", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=t["layer"],
                    y=t[companion.column],
                    mode="lines",
                    name=f"{pair} ({companion.axis})",
                    line=dict(color=FLOOR_COLOUR if t["floor"].iloc[0] else colours[pair], dash="dot"),
                    legendgroup=pair,
                    customdata=t["label"],
                    hovertemplate="layer %{customdata}<br>%{y:.4f}<extra>" + f"{pair} ({companion.axis})</extra>",
                )
            )
    return fig


def cka_heatmap(cross: pd.DataFrame, pair: str, debiased: bool = False) -> go.Figure:
    """Cross-layer CKA between the first variant of a pair (rows) and the second (columns)."""
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


def effective_rank_curves(ranks: pd.DataFrame, reference: str) -> go.Figure:
    """RankMe (solid) and Rényi ranks per variant and layer, every variant's points placed at their relative depth on
    the reference's axis of residual points."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["RankMe (entropy)", "Rényi: dotted α=0.5, dashed α=2, long-dash α=∞"],
        horizontal_spacing=0.1,
    )
    colours = pair_colours(list(dict.fromkeys(ranks["variant"])))
    dashes = {"renyi_0.5": "dot", "renyi_2": "dash", "renyi_inf": "longdash"}
    n_ref = int((ranks["variant"] == reference).sum())
    for v, t in ranks.groupby("variant", sort=False):
        x = positions_on(len(t), n_ref)[t["layer"].to_numpy()]
        fig.add_trace(
            go.Scatter(
                x=x,
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
                    x=x,
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
    fig.update_xaxes(title_text="residual point", **layer_ticks(ranks[ranks["variant"] == reference]))
    return fig


def _xy(t: pd.DataFrame) -> dict:
    """A map's coordinates as float32 (a step sends half the bytes; a screen needs no more)."""
    return dict(x=t["x"].to_numpy(np.float32), y=t["y"].to_numpy(np.float32))


def _trajectory_lines(r: pd.DataFrame, v: pd.DataFrame) -> dict:
    """Grey segments from each reference point to the same concept in the variant (NaN breaks between them)."""
    n = len(r)
    xs, ys = np.full(3 * n, np.nan, np.float32), np.full(3 * n, np.nan, np.float32)
    xs[0::3], xs[1::3] = r["x"].to_numpy(), v["x"].to_numpy()
    ys[0::3], ys[1::3] = r["y"].to_numpy(), v["y"].to_numpy()
    return dict(
        type="scatter",
        x=xs,
        y=ys,
        mode="lines",
        line=dict(color="rgba(80,80,80,0.35)", width=1),
        hoverinfo="skip",
        showlegend=False,
    )


def _markers(t: pd.DataFrame, variant: str, names: list[str], dv: np.ndarray, marker: dict) -> dict:
    """One variant's points; hover names the concept (the same text at every layer) and its drift at this layer."""
    return dict(
        type="scatter",
        **_xy(t),
        mode="markers",
        name=variant,
        marker=marker,
        text=names,
        customdata=np.stack([t["concept"].to_numpy(), dv], axis=1),  # [concept, drift]: clicks read the concept
        hovertemplate="%{text}<br>drift %{customdata[1]:.4f}<extra>" + variant + "</extra>",
    )


def trajectory_traces(
    proj: pd.DataFrame,
    drift: pd.DataFrame,
    reference: str,
    variant: str,
    pair: str,
    layer: int,
    terms: list[str],
    categories: list[str],
    method: str = "umap",
) -> list[dict]:
    """The traces of ``umap_trajectories``, as plain dicts (cheap to build; a dashboard step swaps them in): grey
    segments, the reference's points as hollow circles, the variant's as triangles coloured by drift."""
    p = proj[(proj["layer"] == layer) & (proj["method"] == method)]
    r = p[p["variant"] == reference].sort_values("concept")
    v = p[p["variant"] == variant].sort_values("concept")
    d = drift[(drift["pair"] == pair) & (drift["layer"] == layer)].sort_values("concept")
    dv = d["drift"].to_numpy() if len(d) else np.zeros(len(r))
    names = [f"{t}<br>{c}" for t, c in zip(terms, categories)]
    hollow = dict(size=6, color="white", line=dict(color="#333", width=1))
    by_drift = dict(size=8, color=dv, colorscale="Inferno", colorbar=dict(title="drift"), symbol="triangle-up")
    return [
        _trajectory_lines(r, v),
        _markers(r, reference, names, dv, hollow),
        _markers(v, variant, names, dv, by_drift),
    ]


def map_title(proj: pd.DataFrame, layer: int, method: str, subject: str) -> str:
    """The joint map's title: which map, of what (": a → b" or " by category"), at which layer."""
    p = proj[(proj["layer"] == layer) & (proj["method"] == method)]
    return f"Joint {method.upper()}{subject} (layer {layer_label_of(p)})"


def map_layout(fig: go.Figure, title: str, method: str, **layout: Any) -> go.Figure:
    """The shared look of a joint map, with its title and axes; ``layout`` adds to it or overrides it."""
    axes = dict(xaxis_title=f"{method.upper()} 1", yaxis_title=f"{method.upper()} 2")
    fig.update_layout(**{**LAYOUT, "title": title, **axes, **layout})
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
    traces = trajectory_traces(proj, drift, reference, variant, pair, layer, terms, categories, method)
    return map_layout(
        go.Figure(traces),
        map_title(proj, layer, method, f": {reference} → {variant}"),
        method,
        height=620,
        width=760,
        legend=dict(orientation="h", x=0, y=-0.12, yanchor="top"),
    )


def category_traces(
    proj: pd.DataFrame, layer: int, terms: list[str], categories: list[str], method: str = "umap"
) -> list[dict]:
    """The traces of ``umap_by_category``: one per category and variant, as plain dicts."""
    p = proj[(proj["layer"] == layer) & (proj["method"] == method)]
    colours = category_colours(categories)
    symbols = ["circle", "triangle-up", "square", "diamond", "cross", "x", "star"]
    cats = np.asarray(categories)
    traces = []
    for vi, (variant, t) in enumerate(p.groupby("variant", sort=False)):
        t = t.sort_values("concept")
        for cat in dict.fromkeys(categories):
            sel = t[cats[t["concept"].to_numpy()] == cat]
            traces.append(
                dict(
                    type="scatter",
                    **_xy(sel),
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
                    customdata=sel["concept"].to_numpy(),
                    hovertemplate="%{text}<extra>" + f"{cat} · {variant}" + "</extra>",
                )
            )
    return traces


def umap_by_category(
    proj: pd.DataFrame, layer: int, terms: list[str], categories: list[str], method: str = "umap"
) -> go.Figure:
    """All variants in the shared map, coloured by category, one marker symbol per variant."""
    traces = category_traces(proj, layer, terms, categories, method)
    return map_layout(go.Figure(traces), map_title(proj, layer, method, " by category"), method, height=620, width=860)


def layer_label_of(p: pd.DataFrame) -> str:
    return str(p["label"].iloc[0]) if len(p) else "?"


def neighbour_html(neighbours: pd.DataFrame) -> str:
    """A concept's neighbour list as a small HTML table (terms escaped), or a line saying there is none."""
    if neighbours.empty:
        return "<p class='none'>no neighbours at this layer</p>"
    rows = "".join(
        f"<tr><td>{html.escape(str(term))}</td><td class='num'>{sim:.3f}</td></tr>"
        for term, sim in zip(neighbours["neighbour"], neighbours["similarity"])
    )
    return (
        "<table class='small'><thead><tr><th>neighbour</th><th class='num'>cos</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def map_ranges(proj: pd.DataFrame, pad: float = 0.05) -> tuple[list[float], list[float]]:
    """x and y ranges that hold every layer's map of one method, with a margin."""
    out = []
    for c in ("x", "y"):
        lo, hi = float(proj[c].min()), float(proj[c].max())
        margin = pad * (hi - lo or 1.0)
        out.append([lo - margin, hi + margin])
    return out[0], out[1]


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
        xaxis=dict(title="residual point", **(layer_ticks(d) if len(d) else {})),
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


# ---- activation patching -----------------------------------------------------------------


# ---- behaviour vectors --------------------------------------------------------------------


def _main_pairs(t: Any, meta: dict) -> list[str]:
    """Pairs with a row in the pair table, noise floors left out."""
    pairs = [p for p in meta["pairs"] if p["label"] in set(t["pairs"]["pair"])] if len(t["pairs"]) else []
    return [p["label"] for p in pairs if not p["floor"]]


def headline_figures(t: Any, meta: dict, main_pairs: list[str]) -> dict[str, go.Figure]:
    """Top drifters per pair and the category comparison at the headline layer."""
    cats, head, head_label = meta["categories"], meta["headline_layer"], meta["headline_label"]
    figs = {f"top_drifters_{pair_key(p)}": top_drifters_bar(t["top_drifters"], p, cats, head_label) for p in main_pairs}
    if len(t["categories"]) and main_pairs:
        figs["category_comparison"] = category_comparison(t["categories"], head_label)
        figs["category_violins"] = category_violins(t["drift"], main_pairs, head, cats, head_label)
    return figs


def depth_figures(t: Any, meta: dict, main_pairs: list[str]) -> dict[str, go.Figure]:
    """Drift (overall and by category), Jaccard, CKA and effective rank along depth, and cross-layer CKA maps."""
    layers, lbc, figs = t["layers"], t["layers_by_category"], {}
    for metric in PAIR_METRICS:
        if metric.drawn_with is None and metric.column in layers and layers[metric.column].notna().any():
            figs[f"{metric.name}_by_layer"] = metric_curves(layers, metric, meta["spec"])
    if "drift_mean" in layers:
        floor_rows = layers[layers["floor"]].assign(category=lambda x: "noise floor: " + x["pair"], floor=True)
        for pair in main_pairs:
            own = lbc[lbc["pair"] == pair].rename(columns={"ci_low": "drift_ci_low", "ci_high": "drift_ci_high"})
            curves = pd.concat([own, floor_rows], ignore_index=True)
            title = f"Mean drift per layer by category: {pair} (95% band)"
            figs[f"drift_by_layer_category_{pair_key(pair)}"] = layer_curves(
                curves, DRIFT.column, title, DRIFT.axis, log=True, group="category"
            )
    for pair in dict.fromkeys(t["cka_cross"]["pair"]) if len(t["cka_cross"]) else []:
        figs[f"cka_cross_{pair_key(pair)}"] = cka_heatmap(t["cka_cross"], pair)
    figs["effective_rank"] = effective_rank_curves(t["effective_rank"], meta["reference"])
    return figs


def map_figures(t: Any, meta: dict) -> dict[str, go.Figure]:
    """The joint map at the headline layer: reference -> variant arrows per pair, and points by category."""
    proj, head, terms, cats = t["projections"], meta["headline_layer"], meta["terms"], meta["categories"]
    if not len(proj) or head not in set(proj["layer"]):
        return {}
    figs = {
        f"umap_trajectories_{pair_key(p['label'])}": umap_trajectories(
            proj, t["drift"], p["a"], p["b"], p["label"], head, terms, cats
        )
        for p in meta["pairs"]
        if p["a"] == meta["reference"]
    }
    figs["umap_by_category"] = umap_by_category(proj, head, terms, cats)
    return figs


def figures(results: Any) -> dict[str, go.Figure]:
    """The drift figures of a run, by a key that says what each shows (the report's file stems)."""
    t, meta = results.tables, results.meta
    main_pairs = _main_pairs(t, meta)
    return {**headline_figures(t, meta, main_pairs), **depth_figures(t, meta, main_pairs), **map_figures(t, meta)}


def match_concept(query: str, terms: list[str]) -> int | None:
    """Index of the best match for a typed query: exact (any case), then prefix, then fuzzy."""
    q = query.strip().lower()
    if not q:
        return None
    lower = [t.lower() for t in terms]
    if q in lower:
        return lower.index(q)
    prefix = [i for i, t in enumerate(lower) if t.startswith(q)]
    if prefix:
        return prefix[0]
    close = difflib.get_close_matches(q, lower, n=1, cutoff=0.6)
    if close:
        return lower.index(close[0])
    contains = [i for i, t in enumerate(lower) if q in t]
    return contains[0] if contains else None


class DashboardState(param.Parameterized):
    """What the user is looking at; every view is a function of these parameters and the tables."""

    layer = param.Integer(default=0, bounds=(0, None))
    pair = param.Selector(default=None, objects=[])
    concept = param.Integer(default=0, bounds=(0, None))
    method = param.Selector(default="umap", objects=["umap", "pca"])
    colour = param.Selector(default="drift", objects=["drift", "category"])

    def __init__(self, run: Any, **params):
        self.run = run
        meta = run.meta
        self.terms: list[str] = meta["terms"]
        self.categories: list[str] = meta["categories"]
        self.labels: list[str] = meta["labels"]
        self.pairs: list[dict] = meta["pairs"]
        drift = run.tables["drift"]
        self._drift_by = (
            {key: t.sort_values("concept") for key, t in drift.groupby(["pair", "layer"])} if len(drift) else {}
        )
        self._neighbours = {key: t for key, t in run.tables["neighbours"].groupby(["variant", "layer"])}  # noqa: C416
        proj = run.tables["projections"]
        self._projection_layers = sorted(set(proj["layer"])) if len(proj) else []
        self._map_ranges = {str(m): map_ranges(t) for m, t in proj.groupby("method")} if len(proj) else {}
        ranks = run.tables["effective_rank"]  # one row per point of every variant: each variant's own points
        self.variant_labels = {v: t.sort_values("layer")["label"].tolist() for v, t in ranks.groupby("variant")}
        self._pair_layers = {
            pair: np.array(sorted({k[1] for k in self._drift_by if k[0] == pair})) for pair, _ in self._drift_by
        }
        drift_pairs = [p["label"] for p in self.pairs if any(k[0] == p["label"] for k in self._drift_by)]
        self.param.pair.objects = drift_pairs or [p["label"] for p in self.pairs]
        self.param.layer.bounds = (0, len(self.labels) - 1)
        self.param.concept.bounds = (0, len(self.terms) - 1)
        params.setdefault("pair", self.param.pair.objects[0])
        params.setdefault("layer", meta["headline_layer"])
        super().__init__(**params)

    # ---- data behind each view ---------------------------------------------------------
    @property
    def pair_info(self) -> dict:
        return next(p for p in self.pairs if p["label"] == self.pair)

    def pair_layer(self) -> int:
        """The selected pair's residual point nearest the selected layer: the layer itself unless the pair's variants
        are shallower than the reference and have no point matched to it."""
        layers = self._pair_layers.get(self.pair)
        return self.layer if layers is None or not len(layers) else int(layers[np.abs(layers - self.layer).argmin()])

    def variant_point(self, variant: str) -> int:
        """The variant's own residual point at the selected layer's relative depth (the layer itself at equal depth)."""
        n, n_ref = len(self.variant_labels.get(variant, self.labels)), len(self.labels)
        return self.layer if n == n_ref else int(np.abs(positions_on(n, n_ref) - self.layer).argmin())

    def depth_text(self) -> str:
        """Where the selected layer falls in variants of other depth and in the selected pair, when that differs."""
        parts = []
        for v, labels in self.variant_labels.items():
            if len(labels) != len(self.labels):
                i = self.variant_point(v)
                parts.append(
                    md("{v} at its layer {label} (point {i} of {n})", v=v, label=labels[i], i=i, n=len(labels) - 1)
                )
        if self.pair_layer() != self.layer:
            label = self.labels[self.pair_layer()]
            parts.append(
                md("{pair} is compared at layer {label}, its nearest matched point", pair=self.pair, label=label)
            )
        return "; ".join(parts)

    def layer_drift(self) -> pd.DataFrame:
        """Per-concept drift and percentile of the selected pair at the selected layer (or the pair's nearest)."""
        return self._drift_by.get(
            (self.pair, self.pair_layer()),
            pd.DataFrame(columns=["concept", "term", "category", "drift", "percentile", "jaccard"]),
        )

    def top_table(self, n: int = 30) -> pd.DataFrame:
        d = self.layer_drift().sort_values("drift", ascending=False, kind="stable").head(n)
        return d[["term", "category", "drift", "percentile", "jaccard"]].reset_index(drop=True)

    def neighbours(self, variant: str) -> pd.DataFrame:
        """The selected concept's k nearest neighbours in one variant at the layer (its point at that depth)."""
        t = self._neighbours.get((variant, self.variant_point(variant)))
        if t is None:
            return pd.DataFrame(columns=["rank", "neighbour", "similarity"])
        t = t[t["concept"] == self.concept]
        return pd.DataFrame(
            {
                "rank": t["rank"].to_numpy(),
                "neighbour": t["neighbour_term"].to_numpy(),
                "similarity": t["similarity"].to_numpy(),
            }
        )

    def no_map_reason(self) -> str | None:
        """Why the selected layer has no map (a degenerate point, or not among analysis.umap_layers), or None."""
        if self.layer in self._projection_layers:
            return None
        if self.run.meta.get("no_maps"):
            return self.run.meta["no_maps"]
        label = self.labels[self.layer]
        degenerate = self.run.meta.get("degenerate", {}).get(label)
        if degenerate:
            return degenerate
        mapped = ", ".join(self.labels[i] for i in self._projection_layers) or "none"
        return (
            f"no map at layer {label}: this run mapped {mapped} only (set analysis.umap_layers = 'all' for every layer)"
        )

    # ---- figures -----------------------------------------------------------------------
    def map_traces(self) -> list[dict]:
        """The map's traces at the selected layer (by pair or by category), the selected concept's rings last."""
        proj, info = self.run.tables["projections"], self.pair_info
        if self.colour == "category":
            traces = category_traces(proj, self.layer, self.terms, self.categories, self.method)
            plotted = list(dict.fromkeys(proj["variant"]))
        else:
            drift = self.run.tables["drift"]
            args = (info["a"], info["b"], info["label"], self.layer, self.terms, self.categories, self.method)
            traces = trajectory_traces(proj, drift, *args)
            plotted = [info["a"], info["b"]]
        at = proj[(proj["layer"] == self.layer) & (proj["method"] == self.method) & (proj["concept"] == self.concept)]
        at = at[at["variant"].isin(plotted)]  # rings only around points that are drawn
        ring = dict(
            type="scatter",
            **_xy(at),
            mode="markers+text",
            text=[self.terms[self.concept]] + [""] * (len(at) - 1),
            textposition="top center",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#00a0ff", width=3)),
            name="selected",
            hoverinfo="skip",
        )
        return [*traces, ring]

    def map_title(self) -> str:
        info = self.pair_info
        subject = " by category" if self.colour == "category" else f": {info['a']} → {info['b']}"
        return map_title(self.run.tables["projections"], self.layer, self.method, subject)

    def map_figure(self) -> go.Figure:
        """The joint map at the selected layer, or why there is none; the same frame at every layer."""
        reason = self.no_map_reason()
        if reason is not None:
            return empty_figure(**LAYOUT, height=300, message=reason)
        x_range, y_range = self._map_ranges[self.method]
        legend = {} if self.colour == "category" else {"legend": dict(orientation="h", x=0, y=-0.12, yanchor="top")}
        return map_layout(
            go.Figure(self.map_traces()),
            self.map_title(),
            self.method,
            height=600,
            autosize=True,
            margin=dict(l=50, r=20, t=50, b=40),
            xaxis_range=x_range,  # one frame for every layer, so that a step moves the points, not the axes
            yaxis_range=y_range,
            transition=MAP_TRANSITION,  # and the points glide to their new places
            uirevision=self.method,  # a zoom the user made survives a step
            **legend,
        )

    def concept_drift_figure(self) -> go.Figure:
        fig = concept_layer_curves(
            self.run.tables["drift"], self.concept, self.terms[self.concept], "drift", self.pairs
        )
        return mark_layer(fig, self.layer)

    def concept_jaccard_figure(self) -> go.Figure:
        fig = concept_layer_curves(
            self.run.tables["drift"], self.concept, self.terms[self.concept], "jaccard", self.pairs
        )
        return mark_layer(fig, self.layer)

    def violin_figure(self) -> go.Figure:
        layer = self.pair_layer()
        fig = category_violins(self.run.tables["drift"], [self.pair], layer, self.categories, self.labels[layer])
        fig.update_layout(width=None, autosize=True, height=380)
        return fig

    def metric_figures(self) -> list[go.Figure]:
        """The depth curve of every registered pair metric that has a figure of its own and values in this run."""
        layers, figs = self.run.tables["layers"], []
        for metric in PAIR_METRICS:
            if metric.drawn_with is None and metric.column in layers and layers[metric.column].notna().any():
                fig = metric_curves(layers, metric, self.run.meta["spec"])
                fig.update_layout(height=420, legend=dict(orientation="h", y=-0.3, yanchor="top"))
                fig.update_xaxes(title_text="residual point")
                figs.append(mark_layer(fig, self.layer))
        return figs

    def heatmap_figure(self) -> go.Figure:
        cross = self.run.tables["cka_cross"]
        if cross.empty:
            return empty_figure(**LAYOUT, height=300, message="no cross-layer CKA in this run")
        pairs = list(dict.fromkeys(cross["pair"]))
        pair = self.pair if self.pair in pairs else pairs[0]
        fig = cka_heatmap(cross, pair)
        fig.update_layout(height=480, width=None, autosize=True)
        return fig

    def rank_figure(self) -> go.Figure:
        fig = effective_rank_curves(self.run.tables["effective_rank"], self.run.meta["reference"])
        fig.update_layout(height=380, width=None, autosize=True)
        return mark_layer(fig, self.layer)


class LayerPlayer(pn.widgets.Player):
    """Panel's player, without the 50 ms Panel waits after each widget change for more to come: a layer step is
    one change, and those 50 ms were a fifth of a step."""

    _debounce = 0


class DriftTab:
    """The drift tab's widgets, views and callbacks around one DashboardState."""

    def __init__(self, run: Any) -> None:
        self.state = DashboardState(run)
        self.labels = self.state.labels
        self._controls()
        self._views(run.meta["variants"])
        self.tabs = pn.Tabs(
            ("Map & concept", pn.Row(pn.Column(self.map_pane, sizing_mode="stretch_width"), self._concept_panel())),
            ("Overview", self._overview()),
            dynamic=False,
        )
        self._stale: set[int] = set()  # sub-tabs whose views still show an earlier layer
        self._wire()

    # ---- widgets and views ---------------------------------------------------------------
    def _controls(self) -> None:
        """The layer player and its label, the pair, map and colour choices, and the concept search."""
        state, labels = self.state, self.labels
        self.layer = LayerPlayer(
            label="layer",
            start=0,
            end=len(labels) - 1,
            value=state.layer,
            step=1,
            interval=900,
            loop_policy="once",
            width=380,
            show_value=False,
        )
        self.layer_text = pn.pane.Markdown(width=320, css_classes=["layer-label"], margin=(22, 10, 0, 10))
        self.pair = pn.widgets.Select(
            label="variant pair", options=state.param.pair.objects, value=state.pair, width=240
        )
        self.method = pn.widgets.RadioButtonGroup(label="map", options=["umap", "pca"], value=state.method, width=140)
        self.colour = pn.widgets.RadioButtonGroup(
            label="colour", options=["drift", "category"], value=state.colour, width=170
        )
        self.search = pn.widgets.AutocompleteInput(
            label="concept",
            options=state.terms,
            case_sensitive=False,
            search_strategy="includes",
            placeholder="type a concept…",
            width=240,
            restrict=False,
        )
        self.found = pn.pane.Markdown(css_classes=["found"], width=320, margin=(22, 10, 0, 10))
        self.map_controls = pn.Row(  # shown with the map & concept sub-tab only: the overview has no map
            pn.Column(pn.pane.Markdown("map", margin=(0, 10)), self.method),
            pn.Column(pn.pane.Markdown("colour", margin=(0, 10)), self.colour),
            self.search,
            self.found,
        )

    def _views(self, variants: list[str]) -> None:
        """The figure panes, the top-drifters table and one neighbour table per variant."""
        state = self.state
        self.map_pane = pn.pane.Plotly(  # unlinked: a step edits the figure in place, then sends what changed
            state.map_figure(), sizing_mode="stretch_width", css_classes=["map-pane"], link_figure=False
        )
        self.drift_pane = pn.pane.Plotly(state.concept_drift_figure(), sizing_mode="stretch_width")
        self.jaccard_pane = pn.pane.Plotly(state.concept_jaccard_figure(), sizing_mode="stretch_width")
        self.violin_pane = pn.pane.Plotly(state.violin_figure(), sizing_mode="stretch_width")
        self.metric_panes = [pn.pane.Plotly(f, sizing_mode="stretch_width") for f in state.metric_figures()]
        self.heat_pane = pn.pane.Plotly(state.heatmap_figure(), sizing_mode="stretch_width")
        self.rank_pane = pn.pane.Plotly(state.rank_figure(), sizing_mode="stretch_width")
        self.top = pn.widgets.Tabulator(
            state.top_table(),
            disabled=True,
            height=420,
            layout="fit_data_stretch",
            show_index=False,
            pagination=None,
            css_classes=["top-table"],
            formatters={
                "drift": {"type": "money", "precision": 5},
                "percentile": {"type": "money", "precision": 1},
                "jaccard": {"type": "money", "precision": 3},
            },
        )
        self.neighbour_tables = {  # plain HTML tables: a step redraws four of them, and a grid widget is slow
            v: pn.pane.HTML(
                neighbour_html(state.neighbours(v)), css_classes=[f"nb-{v}"], min_width=150, stylesheets=[TABLE_CSS]
            )
            for v in variants
        }

    # ---- redraws ---------------------------------------------------------------------------
    def selected_text(self) -> str:
        """The selected concept and its category, for the 'found' pane."""
        state = self.state
        return md(
            "selected: **{term}** ({category})",
            term=state.terms[state.concept],
            category=state.categories[state.concept],
        )

    def update_layer_text(self) -> None:
        """Name the selected layer beside the player."""
        labels, layer = self.labels, self.state.layer
        text = md("**layer {label}** (residual point {i} of {n})", label=labels[layer], i=layer, n=len(labels) - 1)
        depth = self.state.depth_text()
        self.layer_text.object = f"{text}; {depth}" if depth else text

    def _redraw_neighbours(self) -> None:
        """Refill every neighbour table for the selected concept and layer."""
        for v, table in self.neighbour_tables.items():
            table.object = neighbour_html(self.state.neighbours(v))

    def step_map(self) -> None:
        """The map at the selected layer: when it has the same traces as the one shown, their coordinates, colours
        and texts are swapped in place and only those go to the browser, where the points glide to their new
        places; otherwise a new figure."""
        fig, state = self.map_pane.object, self.state
        if state.no_map_reason() is None:
            traces = state.map_traces()
            if [t.name for t in fig.data] == [t.get("name") for t in traces]:
                with fig.batch_update():
                    for shown, new in zip(fig.data, traces):
                        shown.update({k: v for k, v in new.items() if k != "type"})
                    fig.layout.title = dict(text=state.map_title())  # a new title: Panel sees the layout change
                self.map_pane.param.trigger("object")
                return
        self.map_pane.object = state.map_figure()

    def _show_layer_on_map_tab(self) -> None:
        """The map and the neighbours."""
        self.step_map()
        self._redraw_neighbours()

    def _show_layer_on_overview(self) -> None:
        """The violins and the top table."""
        self.violin_pane.object = self.state.violin_figure()
        self.top.value = self.state.top_table()

    def _mark_layer_on_later(self, tab: int) -> None:
        """The current-layer marks once the map's points have glided to their places: a browser redrawing those
        curves first held the points back by about 60 ms of a step (at once without a served document)."""
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.add_timeout_callback(lambda: self._mark_layer_on(tab), MAP_TRANSITION["duration"])
        else:
            self._mark_layer_on(tab)

    def _mark_layer_on(self, tab: int) -> None:
        """The current-layer mark on the sub-tab's depth curves (one small relayout message each)."""
        panes = (self.drift_pane, self.jaccard_pane) if tab == MAP_TAB else (*self.metric_panes, self.rank_pane)
        for pane in panes:
            mark_layer(pane.object, self.state.layer)

    def redraw_layer(self, *_: Any) -> None:
        """A new layer: its label and the views of the sub-tab in sight; the other sub-tab catches up when shown."""
        shown = self.tabs.active
        with pn.io.hold():  # one message to the browser for all views
            self.update_layer_text()
            self._show_layer_on(shown)
        self._mark_layer_on_later(shown)
        self._stale = {MAP_TAB, OVERVIEW_TAB} - {shown}

    def _show_layer_on(self, tab: int) -> None:
        (self._show_layer_on_map_tab if tab == MAP_TAB else self._show_layer_on_overview)()

    def on_tab(self, event: Any) -> None:
        """A sub-tab comes into sight: bring its views to the current layer, and show the map's controls with it."""
        self.map_controls.visible = event.new == MAP_TAB
        if event.new in self._stale:
            self._stale.discard(event.new)
            with pn.io.hold():
                self._show_layer_on(event.new)
            self._mark_layer_on(event.new)

    def redraw_concept(self, *_: Any) -> None:
        """A new concept: its name, the map's highlight, the neighbours and its curves across layers."""
        state = self.state
        with pn.io.hold():
            self.found.object = self.selected_text()
            self.map_pane.object = state.map_figure()
            self._redraw_neighbours()
            self.drift_pane.object = state.concept_drift_figure()
            self.jaccard_pane.object = state.concept_jaccard_figure()

    def redraw_pair(self, *_: Any) -> None:
        """A new pair: the map, the violins, the top table and the cross-layer CKA map."""
        state = self.state
        with pn.io.hold():
            self.update_layer_text()
            self.map_pane.object = state.map_figure()
            self.violin_pane.object = state.violin_figure()
            self.top.value = state.top_table()
            self.heat_pane.object = state.heatmap_figure()

    # ---- callbacks -------------------------------------------------------------------------
    def on_search(self, event: Any) -> None:
        """Select the concept that best matches the typed query, or say that none does."""
        if not (event.new or "").strip():
            return  # the box was cleared
        idx = match_concept(event.new, self.state.terms)
        if idx is None:
            self.found.object = md("no concept matches *{query}*", query=event.new)
        else:
            self.state.concept = idx

    def on_map_click(self, event: Any) -> None:
        """Select the clicked point's concept."""
        points = (event.new or {}).get("points") or []
        if points and points[0].get("customdata") is not None:
            c = points[0]["customdata"]
            c = c[0] if isinstance(c, list) else c
            if isinstance(c, (int, float)) and c >= 0:
                self.search.value = ""  # the box no longer names the concept shown
                self.state.concept = int(c)

    def on_heat_click(self, event: Any) -> None:
        """Move the player to the clicked row's reference layer."""
        points = (event.new or {}).get("points") or []
        if points:
            label = str(points[0].get("y"))
            if label in self.labels:
                self.layer.value = self.labels.index(label)

    def _wire(self) -> None:
        """Widgets -> state, clicks -> state, state -> views and widgets, and the URL <-> state."""
        state = self.state
        # widgets -> state
        self.layer.param.watch(lambda e: setattr(state, "layer", int(e.new)), "value")
        self.pair.param.watch(lambda e: setattr(state, "pair", e.new), "value")
        self.method.param.watch(lambda e: setattr(state, "method", e.new), "value")
        self.colour.param.watch(lambda e: setattr(state, "colour", e.new), "value")
        self.search.param.watch(self.on_search, "value")
        self.map_pane.param.watch(self.on_map_click, "click_data")
        self.heat_pane.param.watch(self.on_heat_click, "click_data")
        self.tabs.param.watch(self.on_tab, "active")
        # state -> views (also when the URL sets the state)
        state.param.watch(self.redraw_layer, "layer")
        state.param.watch(self.redraw_concept, "concept")
        state.param.watch(self.redraw_pair, "pair")
        state.param.watch(lambda e: setattr(self.map_pane, "object", state.map_figure()), ["method", "colour"])
        state.param.watch(lambda e: setattr(self.layer, "value", e.new), "layer")
        state.param.watch(lambda e: setattr(self.pair, "value", e.new), "pair")
        if pn.state.location is not None:
            pn.state.location.sync(state, {"layer": "layer", "pair": "pair", "concept": "concept"})

    # ---- downloads and layout --------------------------------------------------------------
    def csv_download(self) -> io.StringIO:
        """The selected pair's per-concept drift at the selected layer, as CSV."""
        buf = io.StringIO()
        to_csv(self.state.layer_drift(), buf)
        buf.seek(0)
        return buf

    def html_download(self) -> io.StringIO:
        """The map as a stand-alone HTML page (plotly.js from the CDN)."""
        return io.StringIO(self.state.map_figure().to_html(include_plotlyjs="cdn"))

    def _export(self) -> pn.Column:
        """The CSV and HTML download buttons, and where PNGs come from."""
        return pn.Column(
            pn.Row(
                pn.widgets.FileDownload(
                    callback=self.csv_download,
                    filename="layer_drift.csv",
                    label="layer table as CSV",
                    color="light",
                    width=170,
                ),
                pn.widgets.FileDownload(
                    callback=self.html_download, filename="map.html", label="map as HTML", color="light", width=150
                ),
            ),
            pn.pane.Markdown("PNG: the camera icon on any figure", margin=(0, 10)),
        )

    def _control_rows(self, export: pn.Column) -> pn.Column:
        """The player row (with the downloads) above the pair, map, colour and search row."""
        return pn.Column(
            pn.Row(self.layer, self.layer_text, export),
            pn.Row(self.pair, self.map_controls),
        )

    def _concept_panel(self) -> pn.Column:
        """The selected concept's drift curve, its neighbours in every variant and its Jaccard curve."""
        neighbours = [
            pn.Column(pn.pane.Markdown(md("**{v}** neighbours", v=v)), t) for v, t in self.neighbour_tables.items()
        ]
        return pn.Column(pn.pane.Markdown("### Concept"), self.drift_pane, pn.Row(*neighbours), self.jaccard_pane)

    def _overview(self) -> pn.Column:
        """The top drifters and violins, every pair metric's depth curve and the rank curves, and the cross-layer
        CKA map."""
        return pn.Column(
            pn.Row(pn.Column(pn.pane.Markdown("### Top drifters at this layer"), self.top), self.violin_pane),
            pn.GridBox(*self.metric_panes, ncols=2, sizing_mode="stretch_width"),
            self.rank_pane,
            self.heat_pane,
        )

    def view(self) -> pn.Column:
        """The controls above two sub-tabs: the map & concept view and the overview."""
        export = self._export()
        self.update_layer_text()
        self.found.object = self.selected_text()
        return pn.Column(self._control_rows(export), self.tabs, sizing_mode="stretch_width")


def tabs(run: Any, selection: Selection | None = None) -> list[tuple[str, Any]]:
    """The drift tab: layer player, pair, map and concept search above a map & concept view and an overview; its
    layer and concept are the session's selection."""
    tab = DriftTab(run)
    if selection is not None:
        follow(selection, tab.state)
    return [("Drift", tab.view())]
