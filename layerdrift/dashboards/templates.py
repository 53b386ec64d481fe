"""Figures of a template ensemble: drift per pair and template, categories per template, pooled depth curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import plotly.graph_objects as go

from layerdrift.core.naming import pair_key
from layerdrift.dashboards.drift import layer_curves
from layerdrift.dashboards.markup import md
from layerdrift.dashboards.style import PAIR_COLOURS, grouped_ci_bars, mark_layer

POOLED_COLOUR = "#222222"


def template_colours(names: list[str]) -> dict[str, str]:
    """A colour per template, the pooled estimate in near-black."""
    return {n: POOLED_COLOUR if n == "pooled" else PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, n in enumerate(names)}


def template_name(number: int) -> str:
    return f"template {number}"


def bars_by_template(frame: pd.DataFrame, x: str, title: str, height: int) -> go.Figure:
    """Mean drift bars along ``x``, one colour per template (``frame.template``; NaN = pooled), with their 95% CIs."""
    groups = frame["template"].map(lambda t: "pooled" if pd.isna(t) else template_name(int(t)))
    frame = frame.assign(group=groups)
    colours = template_colours(list(dict.fromkeys(groups)))
    axis = "mean cosine drift"
    return grouped_ci_bars(frame, x, "group", colours, title, axis, legend_title="template", height=height)


def pairs_by_template(template_pairs: pd.DataFrame, pooled: pd.DataFrame, at: str) -> go.Figure:
    """Each pair's headline drift under every template (95% CI over concepts) and pooled over them."""
    frame = pd.concat([template_pairs, pooled.assign(template=np.nan)], ignore_index=True)
    title = f"Drift per pair at {at}, per template and pooled (95% bootstrap CI over concepts)"
    return bars_by_template(frame, "pair", title, 480)


def categories_by_template(template_categories: pd.DataFrame, pair: str, at: str) -> go.Figure:
    """One pair's mean drift per category under every template (95% CI over the category's concepts)."""
    own = template_categories[template_categories["pair"] == pair]
    title = f"Mean drift by category per template: {pair} (layer {at}, 95% bootstrap CI)"
    return bars_by_template(own, "category", title, 460)


def pooled_depth(layers: pd.DataFrame, metric: str, title: str, axis: str, log: bool) -> go.Figure:
    """A metric pooled over templates along depth for every pair, the band spanning the lowest and highest template."""
    band = (f"{metric}_template_min", f"{metric}_template_max")
    return layer_curves(layers, f"{metric}_mean", title, axis, log=log, band=band)


def figures(results: Any) -> dict[str, go.Figure]:
    """The template ensemble's figures, by what each shows."""
    t, meta = results.tables, results.meta_of("templates")
    at, n = meta["headline_label"], len(meta["templates"])
    pooled, cats = t["ensemble_pairs"], t["template_categories"]
    figs = {"template_pairs": pairs_by_template(t["template_pairs"], pooled, at)}
    for pair in compared_pairs(results):
        if (cats["pair"] == pair).any():
            figs[f"template_categories_{pair_key(pair)}"] = categories_by_template(cats, pair, at)
    layers = t["ensemble_layers"]
    if "drift_mean" in layers and layers["drift_mean"].notna().any():
        title = f"Mean drift per layer pooled over {n} templates (band: lowest to highest template)"
        figs["template_drift_by_layer"] = pooled_depth(layers, "drift", title, "mean cosine drift (log)", True)
    title = f"k-NN Jaccard per layer pooled over {n} templates (band: lowest to highest template)"
    figs["template_jaccard_by_layer"] = pooled_depth(layers, "jaccard", title, "mean Jaccard", False)
    return figs


def templates_table(meta: dict[str, Any]) -> str:
    """The ensemble's templates as Markdown, each with the first term filled in (user text shown as text)."""
    example = meta["example_term"]
    rows = "".join(
        md("| {n} | {text} | {filled} |\n", n=i, text=one_line(text), filled=one_line(text.replace("{term}", example)))
        for i, text in enumerate(meta["templates"], start=1)
    )
    return "| # | template | with the first term |\n|---|---|---|\n" + rows


def one_line(text: str) -> str:
    """A template on one line, its line breaks shown as ``\\n`` (as a config writes them)."""
    return text.replace("\n", "\\n")


def templates_tab(results: Any, selection: Any) -> pn.viewable.Viewable:
    """The ensemble's findings and templates, each pair's drift per template, the pooled depth curve with the
    selected layer marked, and a chosen pair's categories per template."""
    figs, meta = results.figures_by_experiment["templates"], results.meta_of("templates")
    experiment = next(e for e in results.experiments if e.name == "templates")
    findings = "\n".join(md("- {f}", f=f) for f in experiment.findings(results))
    keys = {k.removeprefix("template_categories_"): k for k in figs if k.startswith("template_categories_")}
    pairs = [p for p in compared_pairs(results) if pair_key(p) in keys]
    categories = pn.pane.Plotly(figs[keys[pair_key(pairs[0])]] if pairs else None, sizing_mode="stretch_width")
    choose = pn.widgets.Select(name="pair", options=pairs, value=pairs[0] if pairs else None, width=260)
    choose.param.watch(lambda e: setattr(categories, "object", figs[keys[pair_key(e.new)]]), "value")
    curve = figs.get("template_drift_by_layer", figs["template_jaccard_by_layer"])
    depth = pn.pane.Plotly(mark_layer(go.Figure(curve), selection.layer), sizing_mode="stretch_width")
    selection.param.watch(lambda e: setattr(depth, "object", mark_layer(go.Figure(curve), e.new)), "layer")
    return pn.Column(
        pn.pane.Markdown(findings),
        pn.pane.Markdown(templates_table(meta)),
        pn.Row(pn.pane.Plotly(figs["template_pairs"], sizing_mode="stretch_width"), depth),
        choose,
        categories,
        sizing_mode="stretch_width",
    )


def compared_pairs(results: Any) -> list[str]:
    """The ensemble's pairs, noise floors left out."""
    pooled = results.tables["ensemble_pairs"]
    return list(pooled.loc[~pooled["floor"], "pair"])


def tabs(results: Any, selection: Any) -> list[tuple[str, Any]]:
    return [("Templates", templates_tab(results, selection))]
