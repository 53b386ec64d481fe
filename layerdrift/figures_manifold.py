"""Figures of the feature-manifold probes (SMDS), from the ``manifold_scores`` / ``manifold_similarity`` tables and the
projections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.figures import LAYOUT

VALUES = {
    "score": "SMDS score (ridge map, held-out)",
    "score_orthonormal": "SMDS score (orthonormal map, held-out)",
    "score_reuse": "score of the source token's map applied here",
    "score_chance": "chance score (permuted labels)",
    "rigid_gap": "orthonormal − ridge score",
}
LANDMARK_COLOURS = {"source": "#d62728", "destination": "#2ca02c", "distractor": "#7f7f7f"}
CYCLIC = ("circular", "discrete_circular")


def _grid(scores: pd.DataFrame, value: str) -> tuple[np.ndarray, list[str], list[str], dict[str, int]]:
    """(points x slots values, point labels, slot labels, landmark -> slot) of one set and variant."""
    t = scores.assign(rigid_gap=scores["score_orthonormal"] - scores["score"])
    grid = t.pivot_table(index="point", columns="slot", values=value, aggfunc="first", dropna=False)
    points = t.drop_duplicates("point").set_index("point")["label"].reindex(grid.index).tolist()
    slots = t.drop_duplicates("slot").set_index("slot")["slot_label"].reindex(grid.columns).tolist()
    marks = {r.landmark: int(r.slot) for r in t[t["landmark"] != ""].drop_duplicates("landmark").itertuples()}
    return grid.to_numpy(dtype=float), points, slots, marks


def _mark_landmarks(fig: go.Figure, marks: dict[str, int], col: int) -> None:
    for name, slot in marks.items():
        fig.add_vline(
            x=slot, line=dict(color=LANDMARK_COLOURS.get(name, "#444"), width=1.5, dash="dot"), row=1, col=col
        )


def _tick_text(slots: list[str], marks: dict[str, int] | None = None) -> list[str]:
    """Slot labels for an axis: token text (spaces kept visible), landmark tokens coloured and named."""
    out = [s if s.startswith("{") else repr(s)[1:-1] for s in slots]
    for name, slot in (marks or {}).items():
        out[slot] = f'<span style="color:{LANDMARK_COLOURS.get(name, "#444")}"><b>{out[slot]}</b> ({name})</span>'
    return out


def _heatmap(grid: np.ndarray, points: list[str], slots: list[str], **kw) -> go.Heatmap:
    custom = np.tile(np.asarray([f"{i}: {t}" for i, t in enumerate(_tick_text(slots))], dtype=object), (len(points), 1))
    return go.Heatmap(
        z=grid,
        x=list(range(len(slots))),
        y=list(range(len(points))),
        customdata=custom,
        hovertemplate="point %{y}<br>token %{customdata}<br>%{z:.3f}<extra></extra>",
        **kw,
    )


def _axes(fig: go.Figure, points: list[str], slots: list[str], marks: dict[str, int], n_cols: int) -> None:
    step = max(1, len(points) // 16)
    for c in range(1, n_cols + 1):
        fig.update_xaxes(
            tickvals=list(range(len(slots))),
            ticktext=_tick_text(slots, marks),
            tickangle=-60,
            tickfont=dict(size=9),
            row=1,
            col=c,
        )
        fig.update_yaxes(tickvals=list(range(0, len(points), step)), ticktext=points[::step], row=1, col=c)
    fig.update_yaxes(title_text="residual point (embed, block, final)", row=1, col=1)


def manifold_heatmaps(scores: pd.DataFrame, probe_set: str, value: str = "score") -> go.Figure:
    """Layer x token map of one value for every variant side by side, landmarks marked."""
    t = scores[scores["set"] == probe_set]
    variants = list(dict.fromkeys(t["variant"]))
    fig = make_subplots(rows=1, cols=len(variants), subplot_titles=variants, shared_yaxes=True, horizontal_spacing=0.03)
    gap = value == "rigid_gap"
    for c, v in enumerate(variants, start=1):
        grid, points, slots, marks = _grid(t[t["variant"] == v], value)
        kw = (
            dict(colorscale="RdBu_r", zmid=0, zmin=-0.5, zmax=0.5)
            if gap
            else dict(colorscale="Viridis", zmin=0.3, zmax=1.0)
        )
        fig.add_trace(
            _heatmap(
                grid,
                points,
                slots,
                showscale=c == len(variants),
                colorbar=dict(title="score" if not gap else "Δ"),
                **kw,
            ),
            row=1,
            col=c,
        )
        _mark_landmarks(fig, marks, c)
    _axes(fig, points, slots, marks, len(variants))
    shape = t["shape"].iloc[0]
    chance = t["score_chance"].median()
    fig.update_layout(
        **LAYOUT,
        title=f"{VALUES[value]}: probe set '{probe_set}' ({shape}, {int(t['n_prompts'].max())} "
        f"prompts; chance ≈ {chance:.2f})",
        height=620,
        width=max(700, 520 * len(variants)),
    )
    return fig


def manifold_difference(scores: pd.DataFrame, probe_set: str, reference: str, value: str = "score") -> go.Figure | None:
    """Each variant's map minus the reference's, where both align the prompts to the same tokens (None if none does)."""
    t = scores[scores["set"] == probe_set]
    ref = t[t["variant"] == reference]
    others = [
        v
        for v in dict.fromkeys(t["variant"])
        if v != reference and t[t["variant"] == v]["slot_label"].tolist() == ref["slot_label"].tolist()
    ]
    if ref.empty or not others:
        return None
    base, points, slots, marks = _grid(ref, value)
    fig = make_subplots(
        rows=1,
        cols=len(others),
        subplot_titles=[f"{v} − {reference}" for v in others],
        shared_yaxes=True,
        horizontal_spacing=0.03,
    )
    for c, v in enumerate(others, start=1):
        grid, *_ = _grid(t[t["variant"] == v], value)
        fig.add_trace(
            _heatmap(
                grid - base,
                points,
                slots,
                colorscale="RdBu_r",
                zmid=0,
                zmin=-0.15,
                zmax=0.15,
                showscale=c == len(others),
                colorbar=dict(title="Δ score"),
            ),
            row=1,
            col=c,
        )
        _mark_landmarks(fig, marks, c)
    _axes(fig, points, slots, marks, len(others))
    fig.update_layout(
        **LAYOUT,
        title=f"Where the manifold moves ('{probe_set}'): score minus {reference}'s",
        height=620,
        width=max(700, 520 * len(others)),
    )
    return fig


def manifold_landmark_curves(scores: pd.DataFrame, probe_set: str) -> go.Figure:
    """Score per residual point at each landmark token, a colour per landmark and a dash per variant; chance as a grey
    band."""
    t = scores[(scores["set"] == probe_set) & (scores["landmark"] != "")]
    variants = list(dict.fromkeys(t["variant"]))
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    fig = go.Figure()
    for i, v in enumerate(variants):
        for name, g in t[t["variant"] == v].groupby("landmark", sort=False):
            g = g.sort_values("point")
            fig.add_trace(
                go.Scatter(
                    x=g["point"],
                    y=g["score"],
                    mode="lines+markers",
                    name=f"{name} ({v})",
                    marker=dict(size=4),
                    line=dict(color=LANDMARK_COLOURS.get(name, "#444"), dash=dashes[i % len(dashes)]),
                    customdata=g["label"],
                    hovertemplate="point %{customdata}<br>score %{y:.3f}<extra>" + f"{name} ({v})" + "</extra>",
                )
            )
    chance = t.groupby("point")["score_chance"].agg(["min", "max"]).reset_index()
    fig.add_trace(
        go.Scatter(
            x=np.r_[chance["point"], chance["point"][::-1]],
            y=np.r_[chance["max"], chance["min"][::-1]],
            fill="toself",
            mode="lines",
            fillcolor="rgba(150,150,150,0.25)",
            line=dict(width=0),
            name="chance (permuted labels)",
            hoverinfo="skip",
        )
    )
    labels = t.drop_duplicates("point").sort_values("point")
    step = max(1, len(labels) // 16)
    fig.update_xaxes(tickvals=labels["point"].tolist()[::step], ticktext=labels["label"].tolist()[::step])
    fig.update_layout(
        **LAYOUT,
        title=f"SMDS score at the landmark tokens per layer: '{probe_set}'",
        xaxis_title="residual point",
        yaxis_title="held-out score",
        height=480,
        width=900,
    )
    return fig


def manifold_similarity_map(
    similarity: pd.DataFrame, scores: pd.DataFrame, probe_set: str, variant: str, point: int
) -> go.Figure:
    """Subspace similarity between every two tokens' maps at one residual point (1 = the same 2-D subspace)."""
    t = similarity[
        (similarity["set"] == probe_set) & (similarity["variant"] == variant) & (similarity["point"] == point)
    ]
    grid = t.pivot_table(index="slot_a", columns="slot_b", values="similarity", aggfunc="first")
    s = (
        scores[(scores["set"] == probe_set) & (scores["variant"] == variant)]
        .drop_duplicates("slot")
        .sort_values("slot")
    )
    marks = {r.landmark: int(r.slot) for r in s[s["landmark"] != ""].itertuples()}
    ticks = _tick_text(s["slot_label"].tolist(), marks)
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=list(grid.index),
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar=dict(title="mean cos"),
            hovertemplate="%{y} vs %{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(tickvals=list(range(len(ticks))), ticktext=ticks, tickangle=-60, tickfont=dict(size=9))
    fig.update_yaxes(tickvals=list(range(len(ticks))), ticktext=ticks, tickfont=dict(size=9), autorange="reversed")
    label = t["label"].iloc[0] if len(t) else point
    fig.update_layout(
        **LAYOUT,
        title=f"Subspace similarity between tokens' maps: '{probe_set}', {variant}, point "
        f"{label}<br><sup>mean cosine of the principal angles between ridge maps fitted "
        "on standardised activations</sup>",
        height=640,
        width=700,
    )
    return fig


def manifold_projection(
    coords: np.ndarray, labels: np.ndarray, shape: str, title: str, period: float | None = None
) -> go.Figure:
    """Out-of-fold 2-D (or 1-D) SMDS coordinates of one cell, coloured by label (a cyclic scale for circular labels)."""
    coords = np.asarray(coords)
    y = coords[:, 1] if coords.shape[1] > 1 else np.zeros(len(coords))
    cyclic = shape in CYCLIC
    fig = go.Figure(
        go.Scatter(
            x=coords[:, 0],
            y=y,
            mode="markers",
            marker=dict(
                size=7,
                color=labels,
                colorscale="Phase" if cyclic else "Viridis",
                cmin=0 if cyclic else None,
                cmax=period if cyclic else None,
                colorbar=dict(title="label"),
                line=dict(width=0.3, color="#333"),
            ),
            text=[f"label {v:g}" for v in labels],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        **LAYOUT,
        title=title,
        xaxis_title="SMDS 1",
        yaxis_title="SMDS 2" if coords.shape[1] > 1 else "",
        height=520,
        width=560,
    )
    if coords.shape[1] > 1:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def best_cell(scores: pd.DataFrame, probe_set: str, variant: str, landmark: str | None = None) -> pd.Series:
    """The row of the highest-scoring cell (at one landmark's token, if given)."""
    t = scores[(scores["set"] == probe_set) & (scores["variant"] == variant)]
    if landmark is not None:
        t = t[t["landmark"] == landmark]
    return t.loc[t["score"].idxmax()]


def manifold_projection_grid(scores: pd.DataFrame, projections: dict[str, np.ndarray], probe_set: str) -> go.Figure:
    """Projections at the best source cell and the best destination cell, a column per variant (same cells for all)."""
    t = scores[scores["set"] == probe_set]
    variants = [v for v in dict.fromkeys(t["variant"]) if f"{v}/{probe_set}" in projections]
    ref = t["reference"].iloc[0] if "reference" in t else variants[0]
    ref = ref if ref in variants else variants[0]
    cells = [best_cell(t, probe_set, ref, lm) for lm in ("source", "destination") if (t["landmark"] == lm).any()]
    shape, period = t["shape"].iloc[0], t["period"].iloc[0]
    titles = [f"{v}: {c['landmark']} {c['slot_label']!r} at point {c['label']}" for c in cells for v in variants]
    fig = make_subplots(
        rows=len(cells), cols=len(variants), subplot_titles=titles, horizontal_spacing=0.06, vertical_spacing=0.12
    )
    cyclic = shape in CYCLIC
    for r, cell in enumerate(cells, start=1):
        for c, v in enumerate(variants, start=1):
            coords = projections[f"{v}/{probe_set}"][int(cell["point"]), int(cell["slot"])]
            labels = projections[f"{v}/{probe_set}/labels"]
            y = coords[:, 1] if coords.shape[1] > 1 else np.zeros(len(coords))
            fig.add_trace(
                go.Scatter(
                    x=coords[:, 0],
                    y=y,
                    mode="markers",
                    showlegend=False,
                    marker=dict(
                        size=5,
                        color=labels,
                        colorscale="Phase" if cyclic else "Viridis",
                        cmin=0 if cyclic else None,
                        cmax=period if cyclic else None,
                        showscale=r == 1 and c == len(variants),
                        colorbar=dict(title="label"),
                    ),
                    text=[f"label {x:g}" for x in labels],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=r,
                col=c,
            )
    fig.update_layout(
        **LAYOUT,
        title=f"Out-of-fold SMDS projections, '{probe_set}' (colour = label)",
        height=420 * len(cells) + 80,
        width=max(600, 420 * len(variants)),
    )
    return fig


def manifold_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per set and variant: the best cell, the landmarks' best scores, the rigid check and the change from the
    reference."""
    rows = []
    for (probe_set, variant), g in scores.groupby(["set", "variant"], sort=False):
        best = g.loc[g["score"].idxmax()]
        row = {
            "set": probe_set,
            "variant": variant,
            "best score": float(best["score"]),
            "at point": best["label"],
            "at token": best["slot_label"],
            "chance": float(g["score_chance"].median()),
        }
        for lm in ("source", "destination", "distractor"):
            t = g[g["landmark"] == lm]
            if len(t):
                top = t.loc[t["score"].idxmax()]
                row[f"{lm} best (point)"] = f"{top['score']:.3f} ({top['label']})"
        dest = g[g["landmark"] == "destination"]
        if len(dest):
            top = dest.loc[dest["score"].idxmax()]
            row["destination orthonormal"] = float(top["score_orthonormal"])
            row["destination reuse"] = float(top["score_reuse"])
        ref = scores[(scores["set"] == probe_set) & (scores["variant"] == g["reference"].iloc[0])]
        if variant != g["reference"].iloc[0] and ref["slot_label"].tolist() == g["slot_label"].tolist():
            diff = g["score"].to_numpy() - ref["score"].to_numpy()
            row["mean |Δ| vs reference"] = float(np.nanmean(np.abs(diff)))
            row["max |Δ|"] = float(np.nanmax(np.abs(diff)))
        rows.append(row)
    return pd.DataFrame(rows)
