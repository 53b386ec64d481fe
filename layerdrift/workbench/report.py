"""The report folder of a run: tables (Parquet + CSV), figures (HTML + PNG) and index.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from layerdrift import figures as F
from layerdrift import figures_manifold as MF
from layerdrift import figures_trajectory as TF
from layerdrift.workbench.analyze import Analysis
from layerdrift.workbench.files import atomic_path
from layerdrift.workbench.manifold_run import load_projections
from layerdrift.workbench.spreadsheet import to_csv
from layerdrift.workbench.store import RunStore

REPORT = "report"


def build_figures(analysis: Analysis, projections: dict[str, Any] | None = None) -> dict[str, go.Figure]:
    """Every report figure, by file stem, from the result tables (and the manifold projections, if any)."""
    t, meta = analysis.tables, analysis.meta
    terms, cats, head, head_label = meta["terms"], meta["categories"], meta["headline_layer"], meta["headline_label"]
    pairs = [p for p in meta["pairs"] if p["label"] in set(t["pairs"]["pair"])] if len(t["pairs"]) else []
    main_pairs = [p["label"] for p in pairs if not p["floor"]]
    figs: dict[str, go.Figure] = {}
    for i, pair in enumerate(main_pairs):
        figs[f"top_drifters_{i + 1}"] = F.top_drifters_bar(t["top_drifters"], pair, cats, head_label)
    if len(t["categories"]):
        figs["category_comparison"] = F.category_comparison(t["categories"], head_label)
        figs["category_violins"] = F.category_violins(t["drift"], main_pairs, head, cats, head_label)
    layers = t["layers"]
    if "drift_mean" in layers:
        figs["drift_by_layer"] = F.layer_curves(
            layers,
            "drift_mean",
            "Mean cosine drift per layer (95% bootstrap band; dashed = noise floor)",
            "mean cosine drift (log)",
            log=True,
        )
    lbc = t["layers_by_category"]
    floor_rows = (
        layers[layers["floor"]].assign(category=lambda x: "noise floor: " + x["pair"], floor=True)
        if "drift_mean" in layers
        else pd.DataFrame()
    )
    for i, pair in enumerate(main_pairs):
        curves = pd.concat(
            [
                lbc[lbc["pair"] == pair].rename(columns={"ci_low": "drift_ci_low", "ci_high": "drift_ci_high"}),
                floor_rows,
            ],
            ignore_index=True,
        )
        figs[f"drift_by_layer_category_{i + 1}"] = F.layer_curves(
            curves,
            "drift_mean",
            f"Mean drift per layer by category: {pair} (95% band)",
            "mean cosine drift (log)",
            log=True,
            group="category",
        )
    if len(layers):
        figs["jaccard_by_layer"] = F.layer_curves(
            layers,
            "jaccard_mean",
            f"k-NN Jaccard overlap per layer (k = {meta['spec']['k']}, 95% band)",
            "mean Jaccard",
        )
        figs["cka_by_layer"] = F.cka_curves(layers)
    for i, pair in enumerate(dict.fromkeys(t["cka_cross"]["pair"]) if len(t["cka_cross"]) else []):
        figs[f"cka_cross_{i + 1}"] = F.cka_heatmap(t["cka_cross"], pair)
    figs["effective_rank"] = F.effective_rank_curves(t["effective_rank"])
    proj = t["projections"]
    if len(proj) and head in set(proj["layer"]):
        for i, p in enumerate(x for x in meta["pairs"] if x["a"] == meta["reference"]):
            figs[f"umap_trajectories_{i + 1}"] = F.umap_trajectories(
                proj, t["drift"], p["a"], p["b"], p["label"], head, terms, cats
            )
        figs["umap_by_category"] = F.umap_by_category(proj, head, terms, cats)
    figs.update(experiment_figures(t, projections or {}))
    return figs


def manifold_figures(t: dict[str, pd.DataFrame], projections: dict[str, Any]) -> dict[str, go.Figure]:
    """Per probe set: score maps, differences from the reference, landmark curves, rigid and reuse maps, subspace
    similarity, projections."""
    scores, similarity = t.get("manifold_scores"), t.get("manifold_similarity")
    figs: dict[str, go.Figure] = {}
    if scores is None or scores.empty:
        return figs
    for probe_set in dict.fromkeys(scores["set"]):
        s = scores[scores["set"] == probe_set]
        reference = s["reference"].iloc[0]
        figs[f"manifold_{probe_set}_scores"] = MF.manifold_heatmaps(s, probe_set)
        diff = MF.manifold_difference(s, probe_set, reference)
        if diff is not None:
            figs[f"manifold_{probe_set}_difference"] = diff
        figs[f"manifold_{probe_set}_landmarks"] = MF.manifold_landmark_curves(s, probe_set)
        figs[f"manifold_{probe_set}_rigid"] = MF.manifold_heatmaps(s, probe_set, "rigid_gap")
        figs[f"manifold_{probe_set}_reuse"] = MF.manifold_heatmaps(s, probe_set, "score_reuse")
        if similarity is not None and len(similarity) and reference in set(s["variant"]):
            best = MF.best_cell(s, probe_set, reference, "source")
            figs[f"manifold_{probe_set}_similarity"] = MF.manifold_similarity_map(
                similarity, s, probe_set, reference, int(best["point"])
            )
        if any(k.endswith(f"/{probe_set}") for k in projections):
            figs[f"manifold_{probe_set}_projections"] = MF.manifold_projection_grid(s, projections, probe_set)
    return figs


def experiment_figures(t: dict[str, pd.DataFrame], projections: dict[str, Any] | None = None) -> dict[str, go.Figure]:
    """Patching, behaviour-vector and manifold figures, when the run has those tables."""
    figs: dict[str, go.Figure] = {}
    patching = t.get("patching")
    if patching is not None and len(patching):
        figs["patching_by_block"] = F.patching_curves(patching)
        figs["patching_by_block_last_token"] = F.patching_curves(patching, position="-1")
        for i, ((direction, component), _) in enumerate(patching.groupby(["direction", "component"], sort=False)):
            figs[f"patching_map_{i + 1}"] = F.patching_heatmap(patching, direction, component)
    cosine = t.get("behaviour_cosine")
    if cosine is not None and len(cosine):
        for i, pair in enumerate(dict.fromkeys(cosine["pair"])):
            figs[f"behaviour_cosine_{i + 1}"] = F.behaviour_cosine_curves(cosine, pair)
    pca, cross = t.get("behaviour_pca"), t.get("behaviour_cross")
    for i, b in enumerate(dict.fromkeys(pca["behaviour"]) if pca is not None and len(pca) else []):
        figs[f"behaviour_pca_{i + 1}"] = F.behaviour_pca_scatter(pca, b)
        first = cross[cross["behaviour"] == b]["variant"].iloc[0]
        figs[f"behaviour_layers_{i + 1}"] = F.behaviour_cross_heatmap(cross, b, first)
    steering = t.get("behaviour_steering")
    if steering is not None and len(steering):
        figs["behaviour_steering"] = F.steering_curves(steering)
    figs.update(manifold_figures(t, projections or {}))
    figs.update(trajectory_figures(t))
    return figs


def trajectory_figures(t: dict[str, pd.DataFrame]) -> dict[str, go.Figure]:
    """Checkpoint-series heatmaps, velocity curves with the permutation band, concentration by depth, topology and the
    checkpoint UMAP."""
    figs: dict[str, go.Figure] = {}
    traj, conc, band = t.get("trajectory"), t.get("concentration"), t.get("velocity_band")
    if traj is not None and len(traj):
        for metric in TF.METRICS:
            figs[f"trajectory_{metric}"] = TF.trajectory_heatmaps(traj, metric)
    if band is not None and len(band) and conc is not None:
        figs["trajectory_velocity"] = TF.velocity_curves(band, conc)
        figs["trajectory_concentration"] = TF.concentration_by_layer(conc)
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
        figs["persistence_diagrams_middle"] = TF.persistence_diagrams(bars, shown, layers[len(layers) // 2])
        figs["persistence_diagrams_final"] = TF.persistence_diagrams(bars, shown, layers[-1])
    if topo is not None and len(topo):
        figs["topology_total_persistence_h1"] = TF.topology_summary_curves(topo, series_of, "total_persistence", 1)
        figs["topology_entropy_h1"] = TF.topology_summary_curves(topo, series_of, "persistent_entropy", 1)
    if dist is not None and len(dist) and (dist["kind"] == "pair").any():
        figs["topology_pair_distances"] = TF.topology_pair_distances(dist, 1)
    proj = t.get("trajectory_projection")
    if proj is not None and len(proj) and (proj["series"] != "").any():
        figs["trajectory_umap"] = TF.checkpoint_umap(proj)
    return figs


def write_figures(figs: dict[str, go.Figure], folder: Path, png: bool = True) -> str | None:
    """HTML for each figure (plotly.js written once beside them) and PNGs in one Chromium session.

    Returns a one-sentence note if PNGs could not be rendered, else None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory", full_html=True)
    if not png:
        return None
    try:
        import plotly.io as pio

        sizes = [(fig.layout.width or 1000, fig.layout.height or 500) for fig in figs.values()]
        pio.write_images(
            list(figs.values()),
            [folder / f"{n}.png" for n in figs],
            width=[w for w, _ in sizes],
            height=[h for _, h in sizes],
            scale=1.5,
        )
    except Exception as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        return f"PNG figures were not rendered ({reason}); install Chromium (`apt-get install chromium`) or set analysis.png = false."
    return None


def _table_html(df: pd.DataFrame, floats: int = 4) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{floats}g}", border=0, classes="t", escape=True)


def headline_frames(analysis: Analysis, top_n: int = 10) -> dict[str, pd.DataFrame]:
    """The three tables the terminal and index.html show."""
    t = analysis.tables
    pairs = (
        t["pairs"][["pair", "mean", "std", "median", "min", "max", "ci_low", "ci_high", "jaccard_mean"]]
        if len(t["pairs"])
        else pd.DataFrame()
    )
    cats = (
        t["categories"][
            [
                "pair",
                "category",
                "mean",
                "median",
                "std",
                "max",
                "share_top_quartile",
                "share_vocabulary",
                "ci_low",
                "ci_high",
                "p_vs_rest",
            ]
        ]
        if len(t["categories"])
        else pd.DataFrame()
    )
    top = t["top_drifters"]
    top = (
        top[top["rank"] <= top_n][["pair", "rank", "term", "category", "drift", "percentile"]]
        if len(top)
        else pd.DataFrame()
    )
    return {"pairs": pairs, "categories": cats, "top": top}


def experiment_frames(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Summary tables of the patching and behaviour experiments (empty when the run has none)."""
    out: dict[str, pd.DataFrame] = {}
    patching = t.get("patching")
    if patching is not None and len(patching):
        rows = []
        for (direction, component), g in patching.groupby(["direction", "component"], sort=False):
            every = g[g["position"] == "all"].sort_values("layer")
            last = g[g["position"] == "-1"].sort_values("layer")
            others = g[~g["position"].isin(["all", "-1"])]["normalised_logit_diff"].dropna()
            half_all = every[every["normalised_logit_diff"] >= 0.5]["layer"]
            half_last = last[last["normalised_logit_diff"] >= 0.5]["layer"]
            rows.append(
                {
                    "direction": direction,
                    "component": component,
                    "prompts": int(g["n_prompts"].max()),
                    "first block ≥ 0.5 (all tokens)": int(half_all.iloc[0]) if len(half_all) else None,
                    "first block ≥ 0.5 (last token)": int(half_last.iloc[0]) if len(half_last) else None,
                    "max effect, earlier tokens": float(others.max()) if len(others) else None,
                }
            )
        out["patching"] = pd.DataFrame(rows)
    cosine = t.get("behaviour_cosine")
    if cosine is not None and len(cosine):
        rows = []
        for (b, pair), g in cosine.groupby(["behaviour", "pair"], sort=False):
            blocks = g[~g["label"].isin(["embed", "final"])].dropna(subset=["cosine"]).sort_values("layer")
            if blocks.empty:
                continue
            low = blocks.loc[blocks["cosine"].idxmin()]
            rows.append(
                {
                    "behaviour": b,
                    "pair": pair,
                    "cos first block": float(blocks["cosine"].iloc[0]),
                    "min cos": float(low["cosine"]),
                    "at block": low["label"],
                    "cos last block": float(blocks["cosine"].iloc[-1]),
                    "mean cos": float(blocks["cosine"].mean()),
                }
            )
        out["behaviour"] = pd.DataFrame(rows)
    steering = t.get("behaviour_steering")
    if steering is not None and len(steering):
        rows = []
        for (b, v), g in steering.groupby(["behaviour", "variant"], sort=False):
            plus = g[g["scale"] > 0].set_index("layer")["shift"]
            minus = g[g["scale"] < 0].set_index("layer")["shift"]
            rows.append(
                {
                    "behaviour": b,
                    "variant": v,
                    "P(matching)": float(g[g["scale"] == 0]["p_matching"].iloc[0]),
                    "max shift +c": float(plus.max()),
                    "min shift −c": float(minus.min()),
                    "blocks with the expected signs": f"{int(((plus > 0) & (minus < 0)).sum())}/{len(plus)}",
                }
            )
        out["steering"] = pd.DataFrame(rows)
    scores = t.get("manifold_scores")
    if scores is not None and len(scores):
        out["manifold"] = MF.manifold_summary(scores)
    traj, conc = t.get("trajectory"), t.get("concentration")
    if traj is not None and len(traj) and conc is not None:
        out["trajectory"] = TF.trajectory_summary(conc, traj)
    dist = t.get("topology_distances")
    if dist is not None and len(dist) and (dist["kind"] == "pair").any():
        out["topology"] = TF.topology_pair_table(dist)
    return out


def write_report(store: RunStore, analysis: Analysis, png: bool = True) -> tuple[Path, list[str]]:
    """Write RUN/report: tables/*.parquet|csv, figures/*.html|png, index.html. Returns (folder, notes)."""
    folder = store.root / REPORT
    with atomic_path(folder) as tmp:
        (tmp / "tables").mkdir(parents=True)
        for name, table in analysis.tables.items():
            table.to_parquet(tmp / "tables" / f"{name}.parquet", index=False)
            to_csv(table, tmp / "tables" / f"{name}.csv")
        figs = build_figures(analysis, load_projections(store.root))
        notes = list(analysis.meta.get("warnings", []))
        note = write_figures(figs, tmp / "figures", png)
        if note:
            notes.append(note)
        (tmp / "index.html").write_text(
            index_html(store, analysis, figs, png and note is None, notes), encoding="utf-8"
        )
    return folder, notes


def index_html(store: RunStore, analysis: Analysis, figs: dict[str, Any], with_png: bool, notes: list[str]) -> str:
    m, meta = store.manifest, analysis.meta
    frames = headline_frames(analysis)
    variants = pd.DataFrame(
        [
            {
                "variant": v,
                **{
                    k: m["variants"].get(v, {}).get(k)
                    for k in ("source", "quantization", "dtype", "device", "n_layers", "d_model", "gguf_sha256")
                },
            }
            for v in store.variants
        ]
    )
    fig_html = []
    for name, fig in figs.items():
        title = html.escape(fig.layout.title.text or name)
        body = f'<img src="figures/{name}.png" alt="{title}" loading="lazy">' if with_png else ""
        fig_html.append(
            f'<figure><figcaption>{title} — <a href="figures/{name}.html">interactive</a></figcaption>{body}</figure>'
        )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    titles = {
        "patching": "Activation patching (normalised effect on logit(B) − logit(A): 0 = receiver, 1 = source)",
        "behaviour": "Behaviour vectors: cosine between variants",
        "steering": "Steering check: shift in P(matching answer)",
        "manifold": "Feature manifolds: cross-validated SMDS score (1 − scale-normalised stress; "
        "best cell, landmark tokens, change from the reference)",
        "trajectory": "Checkpoint series: largest drift from step 0 at the last checkpoint, the step "
        "where half of it was reached, and early concentration C (share of change in the "
        "first third of checkpoint intervals, mean over points; p vs random orderings; C "
        "even = the share of the intervals)",
        "topology": "Topology between variants: Wasserstein-2 between H1 diagrams (mean over paired "
        "subsamples), per residual point",
    }
    experiments_html = "".join(
        f"<h2>{titles[k]}</h2>{_table_html(f, 3)}" for k, f in experiment_frames(analysis.tables).items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>layerdrift report: {html.escape(m["config"]["name"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}}
table.t{{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}} table.t td,table.t th{{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}}
table.t th{{background:#f3f3f3}} figure{{margin:1.5em 0}} figure img{{max-width:100%;border:1px solid #eee}} figcaption{{font-weight:600;margin-bottom:4px}}
pre{{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}} .note{{color:#a40}}</style></head><body>
<h1>layerdrift report: {html.escape(m["config"]["name"])}</h1>
<p>Reference <b>{html.escape(meta["reference"])}</b>; prompt set <b>{html.escape(meta["prompt_set"])}</b> ({len(meta["terms"])} concepts);
headline layer <b>{html.escape(str(meta["headline_label"]))}</b> (residual point {meta["headline_layer"]}); noise floor: {html.escape(", ".join(meta["noise_floor"]) or "none")}.
Drift = 1 − cos of L2-normalised last-token vectors; CIs are 95% bootstrap intervals over concepts ({meta["spec"]["n_boot"]} resamples).</p>
{f'<ul class="note">{notes_html}</ul>' if notes else ""}
<h2>Variant pairs</h2>{_table_html(frames["pairs"])}
<h2>Categories</h2>{_table_html(frames["categories"])}
<h2>Top 10 drifters per pair</h2>{_table_html(frames["top"])}
{experiments_html}
<h2>Figures</h2>{"".join(fig_html)}
<h2>Provenance</h2>{_table_html(variants)}
<p>config hash <code>{m["config_hash"]}</code>; created {m["created"]}, updated {m["updated"]}; seed {meta["seed"]}.</p>
<pre>{html.escape(json.dumps({"packages": m["packages"], "platform": m["platform"], "config": m["config"]}, indent=1))}</pre>
</body></html>"""
