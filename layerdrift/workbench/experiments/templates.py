"""Template ensembles: the drift analyses once per template of the analysed prompt set, and pooled over templates.

A prompt set with ``templates = [...]`` is captured once per template (``layerdrift.concepts.templates``); every
other experiment reads its first template. This one runs the drift pair analyses (``experiments.drift``) on each
template's captures and pools them (``layerdrift.analyses.ensemble``): the pooled drift and Jaccard with the bootstrap
CI over concepts beside the spread between templates, and, for each headline finding, in how many templates it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from layerdrift.analyses.ensemble import holds_in, pooled_mean
from layerdrift.analyses.headline import SIGNIFICANCE
from layerdrift.core.hashing import fingerprint
from layerdrift.dashboards.templates import one_line
from layerdrift.workbench.config import AnalysisSpec, ExperimentConfig
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.drift import (
    analysis_fingerprint,
    drift_inputs,
    joined_pair_tables,
    tables_of_pairs,
    variant_pairs,
)
from layerdrift.workbench.experiments.protocol import Experiment, Output

RESULT_SET = "templates"
TABLES = (
    "template_pairs",
    "template_categories",
    "template_layers",
    "template_drift",
    "ensemble_pairs",
    "ensemble_categories",
    "ensemble_layers",
)


SPREAD = ["mean", "ci_low", "ci_high", "template_sd", "template_min", "template_max"]
POOLED_PAIR_COLUMNS = ["pair", "a", "b", "floor", "n_templates", *SPREAD]
POOLED_PAIR_COLUMNS += ["jaccard_mean", "jaccard_template_sd", "above_floor_in"]
POOLED_CATEGORY_COLUMNS = ["pair", "floor", "category", "n", *SPREAD, "top_in", "higher_in", "survives_floor_in"]


def ensemble_settings(config: ExperimentConfig) -> AnalysisSpec | None:
    """The analysis settings the ensemble's tables depend on, when the analysed prompt set has several templates."""
    if config.ensemble_of_analysed() is None:
        return None
    a = config.analysis
    return AnalysisSpec(k=a.k, n_boot=a.n_boot, n_perm=a.n_perm, headline_layer=a.headline_layer, align=a.align)


def per_template_tables(ctx: RunContext, prompt_set: str, spec: AnalysisSpec) -> dict[str, pd.DataFrame]:
    """One template's pair tables (the drift experiment's, on that template's captures), and its per-concept drift
    and Jaccard at each pair's headline point (``template_drift``)."""
    store, engine = ctx.store, ctx.engine
    inputs = engine.share(drift_inputs(store, prompt_set, spec, ctx.config.seed))
    per_pair, _ = tables_of_pairs(variant_pairs(store), inputs, engine)
    t = joined_pair_tables(per_pair)
    heads = t["pairs"][["pair", "layer"]] if len(t["pairs"]) else pd.DataFrame({"pair": [], "layer": []})
    at_head = t["drift"].merge(heads, on=["pair", "layer"]) if len(t["drift"]) else t["drift"]
    columns = ["pair", "layer", "label", "concept", "term", "category", "drift", "jaccard"]
    return {
        "template_pairs": t["pairs"],
        "template_categories": t["categories"],
        "template_layers": t["layers"],
        "template_drift": at_head[columns] if len(at_head) else pd.DataFrame(columns=columns),
    }


def by_template(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A headline per-concept column of one pair as (templates, concepts), templates and concepts in order."""
    return frame.pivot(index="template", columns="concept", values=column).sort_index().to_numpy()


def ensemble_pairs(t: dict[str, pd.DataFrame], spec: AnalysisSpec, seed: int) -> pd.DataFrame:
    """Per pair: the pooled drift and Jaccard at the headline point over templates (CI over concepts, spread between
    templates), and in how many templates its drift is above the noise floor's (CI above the floor's CI)."""
    pairs, drift = t["template_pairs"], t["template_drift"]
    if pairs.empty:  # no drift in any template (variants of different widths, no alignment): nothing to pool
        return pd.DataFrame(columns=POOLED_PAIR_COLUMNS)
    above_floor = above_floor_by_template(pairs)
    rows = []
    for label, own in pairs.groupby("pair", sort=False):
        d = drift[drift["pair"] == label]
        row = {"pair": label, "a": own["a"].iloc[0], "b": own["b"].iloc[0], "floor": bool(own["floor"].iloc[0])}
        row |= {"n_templates": len(own), **pooled_mean(by_template(d, "drift"), spec.n_boot, seed)}
        jac = pooled_mean(by_template(d, "jaccard"), spec.n_boot, seed)
        row |= {"jaccard_mean": jac["mean"], "jaccard_template_sd": jac["template_sd"]}
        above = above_floor.get(label)
        rows.append(row | {"above_floor_in": np.nan if above is None else holds_in(above)})
    return pd.DataFrame(rows, columns=POOLED_PAIR_COLUMNS)


def above_floor_by_template(pairs: pd.DataFrame) -> dict[str, pd.Series]:
    """Per non-floor pair, by template: whether its drift's CI lies above the (first) noise-floor pair's CI in that
    template; empty without a floor variant."""
    floors = pairs[pairs["floor"]]
    if floors.empty:
        return {}
    floor = floors[floors["pair"] == floors["pair"].iloc[0]].set_index("template")["ci_high"]
    out = {}
    for label, own in pairs[~pairs["floor"]].groupby("pair", sort=False):
        mine = own.set_index("template")["ci_low"]
        out[str(label)] = mine > floor.reindex(mine.index)
    return out


def ensemble_categories(t: dict[str, pd.DataFrame], spec: AnalysisSpec, seed: int) -> pd.DataFrame:
    """Per pair and category: the pooled drift over templates (CI over the category's concepts, spread between
    templates), in how many templates it is the category that drifts most, drifts significantly more than the rest,
    and does so read against the noise floor too."""
    cats, drift = t["template_categories"], t["template_drift"]
    if cats.empty:
        return pd.DataFrame(columns=POOLED_CATEGORY_COLUMNS)
    first = cats.loc[cats.groupby(["pair", "template"])["mean"].idxmax(), ["pair", "category"]]
    rows = []
    for (label, category), own in cats.groupby(["pair", "category"], sort=False):
        d = drift[(drift["pair"] == label) & (drift["category"] == category)]
        tops = first.loc[first["pair"] == label, "category"]
        higher = (own["p_vs_rest"] < SIGNIFICANCE) & (own["diff_vs_rest"] > 0)
        rows.append(
            {
                "pair": label,
                "floor": bool(own["floor"].iloc[0]),
                "category": category,
                "n": int(own["n"].iloc[0]),
                **pooled_mean(by_template(d, "drift"), spec.n_boot, seed),
                "top_in": holds_in(tops == category),
                "higher_in": holds_in(higher),
                "survives_floor_in": holds_in(own["verdict"] == "survives the floor"),
            }
        )
    return pd.DataFrame(rows, columns=POOLED_CATEGORY_COLUMNS)


def ensemble_layers(layers: pd.DataFrame) -> pd.DataFrame:
    """Per pair and residual point: the drift and Jaccard means pooled over templates (the mean of the templates'
    means), with their lowest and highest template."""
    stats = {
        f"{metric}_{name}": (f"{metric}_mean", how)
        for metric in ("drift", "jaccard")
        if f"{metric}_mean" in layers
        for name, how in (("mean", "mean"), ("template_min", "min"), ("template_max", "max"))
    }
    return layers.groupby(["pair", "floor", "layer", "label"], sort=False).agg(**stats).reset_index()


def numbered(frames: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The templates' tables joined, each row with its template's number (1 = the seed template); a table no template
    has rows of (e.g. categories of variants of different widths) stays empty."""
    out = {}
    for name in frames[0]:
        parts = [f[name].assign(template=i) for i, f in enumerate(frames, start=1) if len(f[name])]
        empty = pd.DataFrame(columns=[*frames[0][name], "template"])
        out[name] = pd.concat(parts, ignore_index=True) if parts else empty
    return out


@dataclass
class TemplatesRun:
    """The drift pair analyses on every template of the analysed prompt set's ensemble, and their pooling."""

    ctx: RunContext

    def __post_init__(self) -> None:
        config = self.ctx.config
        ensemble = config.ensemble_of_analysed()
        self.templates = list(ensemble.templates)
        self.sets = [p.name for p in ensemble.captured()]
        self.spec = ensemble_settings(config)
        store, seed = self.ctx.store, config.seed
        self.key = fingerprint([analysis_fingerprint(store, ps, self.spec, seed) for ps in self.sets])

    def run(self) -> Output:
        frames = []
        for i, ps in enumerate(self.sets, start=1):
            self.ctx.say(f"template {i}/{len(self.sets)}: drift and neighbourhoods ({ps})")
            frames.append(per_template_tables(self.ctx, ps, self.spec))
        tables = numbered(frames)
        seed = self.ctx.config.seed
        tables["ensemble_pairs"] = ensemble_pairs(tables, self.spec, seed)
        tables["ensemble_categories"] = ensemble_categories(tables, self.spec, seed)
        tables["ensemble_layers"] = ensemble_layers(tables["template_layers"])
        info = self.ctx.store.manifest["prompt_sets"][self.sets[0]]
        meta = {
            "templates": self.templates,
            "prompt_sets": self.sets,
            "example_term": info["terms"][0],
            "reference": self.ctx.store.reference,
            "headline_label": str(tables["template_drift"]["label"].iloc[0]) if len(tables["template_drift"]) else None,
        }
        return Output(tables, meta=meta)


def summaries(results: Any) -> dict[str, pd.DataFrame]:
    """The templates, the pooled pair table, the pair table per template and the pooled category table."""
    t, meta = results.tables, results.meta_of(RESULT_SET)
    n, at = len(meta["templates"]), meta["headline_label"]
    example = meta["example_term"]
    templates = pd.DataFrame(
        {
            "template": range(1, n + 1),
            "prompt_set": meta["prompt_sets"],
            "text": [one_line(text) for text in meta["templates"]],
            "example": [one_line(text.replace("{term}", example)) for text in meta["templates"]],
        }
    )
    pooled_cols = ["pair", "mean", "ci_low", "ci_high", "template_sd", "template_min", "template_max"]
    pooled_cols += ["above_floor_in", "jaccard_mean", "jaccard_template_sd"]
    cats = t["ensemble_categories"]
    cat_cols = ["pair", "category", "mean", "ci_low", "ci_high", "template_sd", "top_in", "higher_in"]
    cat_cols += ["survives_floor_in"]
    return {
        f"Template ensemble: the {n} templates (template 1 is the one every other analysis reads)": templates,
        f"Template ensemble: drift per pair at {at}, pooled over {n} templates (95% bootstrap CI over concepts; "
        "template_sd, _min, _max = spread of the per-template means; above_floor_in = templates whose CI lies above "
        "the noise floor's)": t["ensemble_pairs"][pooled_cols],
        f"Template ensemble: drift per pair and template at {at} (95% bootstrap CI over concepts)": t["template_pairs"][
            ["pair", "template", "mean", "ci_low", "ci_high", "jaccard_mean"]
        ],
        f"Template ensemble: categories pooled over {n} templates (top_in = templates where the category drifts "
        f"most; higher_in = significantly more than the rest, p < {SIGNIFICANCE}; survives_floor_in = and read "
        "against the noise floor too)": cats[~cats["floor"]][cat_cols],
    }


def templates_text(numbers: list[int]) -> str:
    """Template numbers as a reader reads them: "template 3", "templates 1, 2 and 4"."""
    if len(numbers) == 1:
        return f"template {numbers[0]}"
    return "templates " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def verdict(holds: int, n: int) -> str:
    return "holds for every template" if holds == n else "depends on the template"


def pair_finding(row: pd.Series, failing: list[int], n: int, at: str) -> str:
    """A pair's pooled drift with both uncertainties, and in how many templates it is above the noise floor."""
    text = (
        f"Over {n} templates, {row['pair']} drifts {row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}] at "
        f"{at} (pooled; 95% CI over concepts), from {row['template_min']:.4g} to {row['template_max']:.4g} between "
        f"templates (sd {row['template_sd']:.2g})"
    )
    if np.isnan(row["above_floor_in"]):
        return text + "; there is no noise floor to read it against."
    holds = int(row["above_floor_in"])
    where = f" (not in {templates_text(failing)})" if 0 < holds < n else ""
    return f"{text}; above the noise floor in {holds} of {n} templates{where}: {verdict(holds, n)}."


def category_finding(label: str, pooled: pd.DataFrame, per_template: pd.DataFrame, n: int) -> str:
    """Which category a pair moves most, pooled, and in how many templates it is the first, significantly so, and
    against the floor."""
    top = pooled.loc[pooled["mean"].idxmax()]
    firsts = per_template.loc[per_template.groupby("template")["mean"].idxmax()].set_index("template")["category"]
    other = firsts[firsts != top["category"]]
    others = [
        f"{templates_text([int(i) for i in g.index])} put{'s' if len(g) == 1 else ''} {c} first"
        for c, g in sorted(other.groupby(other), key=lambda cg: cg[1].index.min())
    ]
    holds = int(top["top_in"])
    return (
        f"{label} moves {top['category']} concepts most in {holds} of {n} templates (pooled {top['mean']:.4g} "
        f"[{top['ci_low']:.4g}, {top['ci_high']:.4g}], template sd {top['template_sd']:.2g}); significantly more than "
        f"the rest in {int(top['higher_in'])} of {n}, and read against the noise floor in "
        f"{int(top['survives_floor_in'])} of {n}" + (f"; {'; '.join(others)}" if others else "") + f": "
        f"{verdict(holds, n)}."
    )


def order_finding(pairs: pd.DataFrame, pooled: pd.DataFrame, reference: str, n: int) -> list[str]:
    """Whether the pairs from the reference keep their pooled order by drift in every template."""
    mine = pooled[(pooled["a"] == reference) & ~pooled["floor"]].sort_values("mean", ascending=False)
    if len(mine) < 2:
        return []
    order = list(mine["pair"])
    wide = pairs.pivot(index="template", columns="pair", values="mean")[order]
    kept = (wide.diff(axis=1).iloc[:, 1:] < 0).all(axis=1)
    failing = [int(t) for t in kept.index[~kept]]
    values = " vs ".join(f"{m:.4g}" for m in mine["mean"])
    where = f" (not in {templates_text(failing)})" if 0 < holds_in(kept) < n else ""
    return [
        f"Ordered by drift, {' > '.join(order)} (pooled {values}) in {holds_in(kept)} of {n} templates{where}: "
        f"{verdict(holds_in(kept), n)}."
    ]


def findings(results: Any) -> list[str]:
    """For each headline finding of the drift analyses, whether it holds in every template, with its numbers."""
    t, meta = results.tables, results.meta_of(RESULT_SET)
    n, at = len(meta["templates"]), meta["headline_label"]
    pooled, cats = t["ensemble_pairs"], t["ensemble_categories"]
    above = above_floor_by_template(t["template_pairs"])
    out = []
    for _, row in pooled[~pooled["floor"]].iterrows():
        flags = above.get(row["pair"])
        failing = [] if flags is None else [int(i) for i in flags.index[~flags.to_numpy(dtype=bool)]]
        out.append(pair_finding(row, failing, n, at))
        mine = cats[cats["pair"] == row["pair"]]
        if len(mine):
            per_template = t["template_categories"]
            out.append(category_finding(row["pair"], mine, per_template[per_template["pair"] == row["pair"]], n))
    return out + order_finding(t["template_pairs"], pooled, meta["reference"], n)


EXPERIMENT = Experiment(
    name=RESULT_SET,
    version="1",
    settings=ensemble_settings,
    runner=TemplatesRun,
    tables=TABLES,
    summaries=summaries,
    findings=findings,
)
