"""Figures and tab of the lens experiment: where each pair's difference starts along depth, common-lens JS by layer,
the pairs x depth map of drift over the noise floor, and a concept's lens read-out layer by layer."""

from __future__ import annotations

from html import escape as escape_html
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import plotly.graph_objects as go

from layerdrift.dashboards.markup import md
from layerdrift.dashboards.selection import Selection
from layerdrift.dashboards.style import LAYOUT, PAIR_COLOURS, TABLE_CSS, mark_layer, pair_colours, shade_band

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


def drift_over_floor_map(layers: pd.DataFrame) -> go.Figure:
    """Pairs x residual points: log10 of the mean cosine drift over the noise-floor pair's at the same point (0: at
    the floor), or the drift itself when the run has no floor."""
    main, floor = layers[~layers["floor"]], layers[layers["floor"]]
    drift = main.pivot_table(index="pair", columns="layer", values="drift_mean", sort=False, dropna=False)
    labels = layers.drop_duplicates("layer").set_index("layer").loc[drift.columns, "label"].astype(str).tolist()
    if len(floor):
        base = floor[floor["pair"] == floor["pair"].iloc[0]].set_index("layer")["drift_mean"].reindex(drift.columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(drift.to_numpy() / base.to_numpy())
        z[~np.isfinite(z)] = np.nan
        colour = dict(colorscale="RdBu_r", zmid=0, colorbar=dict(title="log10(drift / floor)"))
        title = f"Cosine drift over the noise floor ({escape_html(floor['pair'].iloc[0])}) by pair and point"
        hover = "%{y} at %{x}: drift / floor = 10^%{z:.2f}<extra></extra>"
    else:
        z = drift.to_numpy()
        colour = dict(colorscale="Viridis", colorbar=dict(title="cosine drift"))
        title = "Cosine drift by pair and point (the run has no noise-floor variant)"
        hover = "%{y} at %{x}: drift %{z:.3g}<extra></extra>"
    fig = go.Figure(
        go.Heatmap(
            z=z, x=labels, y=[escape_html(p) for p in drift.index], hovertemplate=hover, xgap=1, ygap=1, **colour
        )
    )
    fig.update_layout(**LAYOUT, title=title, xaxis_title="residual point", yaxis=dict(autorange="reversed"))
    fig.update_layout(height=160 + 40 * len(drift))
    return fig


def visible_token(token: str) -> str:
    """A token as it reads in a table: spaces as ␣, newlines as ⏎, HTML escaped."""
    return escape_html(token.replace(" ", "␣").replace("\n", "⏎"))


def readout_html(tables: Any, a: str, b: str, pair: str, concept: int, labels: list[str], layer: int) -> str:
    """One concept's lens read-out at every point: a's and b's top tokens through their own heads side by side, and
    the common-lens JS of the pair there (a rounded -0 shows as 0); the selected layer's row is highlighted."""
    top = tables["lens_top"]
    top = top[(top["concept"] == concept) & top["variant"].isin([a, b])]
    words = {
        (v, at): ", ".join(f"{visible_token(t)} {p:.2f}" for t, p in zip(g["token"], g["prob"]))
        for (v, at), g in top.sort_values("rank").groupby(["variant", "layer"])
    }
    common = tables["lens_common"]
    js = common[(common["pair"] == pair) & (common["concept"] == concept)].set_index("layer")["js"]
    rows = "".join(
        f"<tr{' class=current' if i == layer else ''}><td>{escape_html(label)}</td><td>{words.get((a, i), '')}</td>"
        f"<td>{words.get((b, i), '')}</td><td class='num'>{abs(js.get(i, np.nan)):.2g}</td></tr>"
        for i, label in enumerate(labels)
    )
    return (
        f"<table class='small readout'><thead><tr><th>point</th><th>{escape_html(a)}</th><th>{escape_html(b)}</th>"
        f"<th class='num'>JS</th></tr></thead><tbody>{rows}</tbody></table>"
    )


READOUT_CSS = TABLE_CSS + "table.small tr.current td { background: #fff3c4; }"


class LocalisationTab:
    """A pair's normalised depth curves (clicking a point moves the session's layer) beside the selected concept's
    lens read-out, above the pairs x depth map and the common-lens JS."""

    def __init__(self, results: Any, selection: Selection) -> None:
        self.tables, self.selection = results.tables, selection
        meta = results.meta_of("lens")
        self.labels, self.terms = meta["labels"], results.meta["terms"]
        located = self.tables["localisation"]
        pairs = list(dict.fromkeys(located.sort_values("floor", kind="stable")["pair"]))
        self.pairs = {p["label"]: p for p in results.meta["pairs"]}
        self.pair = pn.widgets.Select(name="variant pair", options=pairs, value=pairs[0], width=240)
        self.curves = pn.pane.Plotly(self.curve_figure(), sizing_mode="stretch_width", css_classes=["loc-curves"])
        self.concept = pn.pane.Markdown(self.concept_text(), css_classes=["readout-concept"])
        self.readout = pn.pane.HTML(self.readout_text(), stylesheets=[READOUT_CSS], css_classes=["readout"])
        self.pair.param.watch(self.redraw, "value")
        self.curves.param.watch(self.on_click, "click_data")
        selection.param.watch(self.on_layer, "layer")
        selection.param.watch(self.redraw_readout, "concept")

    def curve_figure(self) -> go.Figure:
        return mark_layer(localisation_figure(self.tables, self.pair.value), self.selection.layer)

    def concept_text(self) -> str:
        return md(
            "### Lens read-out: **{term}**\n\nthe top tokens through each variant's own head at every point "
            "(what it would say there) and the pair's common-lens JS; pick the concept on the Drift tab",
            term=self.terms[self.selection.concept],
        )

    def readout_text(self) -> str:
        pair = self.pairs[self.pair.value]
        return readout_html(
            self.tables, pair["a"], pair["b"], pair["label"], self.selection.concept, self.labels, self.selection.layer
        )

    def redraw(self, *_: Any) -> None:
        with pn.io.hold():
            self.curves.object = self.curve_figure()
            self.readout.object = self.readout_text()

    def redraw_readout(self, *_: Any) -> None:
        with pn.io.hold():
            self.concept.object = self.concept_text()
            self.readout.object = self.readout_text()

    def on_layer(self, *_: Any) -> None:
        """The session's layer moved: the mark on the curves (in place) and the read-out's highlighted row."""
        with pn.io.hold():
            mark_layer(self.curves.object, self.selection.layer)
            self.curves.param.trigger("object")
            self.readout.object = self.readout_text()

    def on_click(self, event: Any) -> None:
        """Move the session's layer (and the Drift tab's player) to the clicked point."""
        points = (event.new or {}).get("points") or []
        if points and str(points[0].get("x")) in self.labels:
            self.selection.layer = self.labels.index(str(points[0]["x"]))

    def view(self, figures: list[go.Figure]) -> pn.Column:
        panes = [pn.pane.Plotly(fig, sizing_mode="stretch_width") for fig in figures]
        return pn.Column(
            self.pair,
            pn.Row(self.curves, pn.Column(self.concept, self.readout, width=520)),
            *panes,
            sizing_mode="stretch_width",
        )


def figures(results: Any) -> dict[str, go.Figure]:
    t = results.tables
    out = {}
    if len(t.get("layers", ())) and (~t["layers"]["floor"]).any():
        out["drift_over_floor"] = drift_over_floor_map(t["layers"])
    if len(t["lens_layers"]):
        out["lens_common_js"] = common_lens_figure(t["lens_layers"])
    for pair in dict.fromkeys(t["localisation"]["pair"]) if len(t["localisation"]) else []:
        out[f"localisation_{pair}"] = localisation_figure(t, pair)
    return out


def tabs(results: Any, selection: Selection | None = None) -> list[tuple[str, Any]]:
    """The Localisation tab, where the run has a localisation table."""
    if not len(results.tables["localisation"]):
        return []
    shown = figures(results)
    tab = LocalisationTab(results, selection or Selection())
    return [("Localisation", tab.view([shown[k] for k in ("drift_over_floor", "lens_common_js") if k in shown]))]
