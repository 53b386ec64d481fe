"""Figures of the feature-manifold probes (SMDS), from the ``manifold_scores`` / ``manifold_similarity`` tables and the
projections."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from layerdrift.dashboards.style import LAYOUT, empty_figure

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


def _heatmap(
    grid: np.ndarray, points: list[str], slots: list[str], detail: np.ndarray | None = None, **kw
) -> go.Heatmap:
    """One map; ``detail`` (points x slots strings) is added to each cell's hover text."""
    custom = np.tile(np.asarray([f"{i}: {t}" for i, t in enumerate(_tick_text(slots))], dtype=object), (len(points), 1))
    if detail is not None:
        custom = custom + "<br>" + detail
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


def reach(grid: np.ndarray, at_least: float) -> float:
    """The largest |value| in a grid, or ``at_least`` if that is larger: a symmetric colour range that clips nothing."""
    values = np.abs(np.asarray(grid, dtype=float))
    return max(at_least, float(np.nanmax(values))) if np.isfinite(values).any() else at_least


def _finite_min(grid: np.ndarray) -> float:
    values = np.asarray(grid, dtype=float)
    return float(np.nanmin(values)) if np.isfinite(values).any() else 0.0


def manifold_heatmaps(scores: pd.DataFrame, probe_set: str, value: str = "score") -> go.Figure:
    """Layer x token map of one value for every variant side by side, landmarks marked."""
    t = scores[scores["set"] == probe_set]
    variants = list(dict.fromkeys(t["variant"]))
    fig = make_subplots(rows=1, cols=len(variants), subplot_titles=variants, shared_yaxes=True, horizontal_spacing=0.03)
    gap = value == "rigid_gap"
    for c, v in enumerate(variants, start=1):
        grid, points, slots, marks = _grid(t[t["variant"] == v], value)
        kw = (  # the usual range, widened to the data's so that no cell is clipped
            dict(colorscale="RdBu_r", zmid=0, zmin=-reach(grid, 0.5), zmax=reach(grid, 0.5))
            if gap
            else dict(colorscale="Viridis", zmin=min(0.3, _finite_min(grid)), zmax=1.0)
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


def _difference_detail(t: pd.DataFrame) -> np.ndarray | None:
    """Per cell of one variant: its activation drift and the noise floor's |Δ score| there, as hover text."""
    if "drift" not in t:
        return None
    drift, floor = _grid(t, "drift")[0], _grid(t, "floor_diff")[0]
    text = np.vectorize(
        lambda d, f: f"activation drift {d:.3g}" + (f"; noise floor |Δ| {f:.3f}" if np.isfinite(f) else "")
    )
    return text(drift, floor).astype(object)


def _comparable(t: pd.DataFrame, reference: str, beyond_floor: bool) -> list[str]:
    """The variants whose cells correspond to the reference's (the same aligned tokens) and, for the beyond-the-floor
    map, that have a noise floor to be read against."""
    ref_slots = t[t["variant"] == reference]["slot_label"].tolist()
    out = []
    for v in dict.fromkeys(t["variant"]):
        own = t[t["variant"] == v]
        no_floor = "floor_diff" not in own or own["floor_diff"].isna().all()
        if v != reference and own["slot_label"].tolist() == ref_slots and not (beyond_floor and no_floor):
            out.append(v)
    return out


def manifold_difference(
    scores: pd.DataFrame, probe_set: str, reference: str, value: str = "score", beyond_floor: bool = False
) -> go.Figure | None:
    """Each variant's map minus the reference's, where both align the prompts to the same tokens (None if none does);
    with ``beyond_floor``, only the cells where the difference exceeds the noise floor variant's at that cell."""
    t = scores[scores["set"] == probe_set]
    ref = t[t["variant"] == reference]
    others = _comparable(t, reference, beyond_floor)
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
    diffs = {v: _grid(t[t["variant"] == v], value)[0] - base for v in others}
    if beyond_floor:
        for v in others:
            diffs[v][_grid(t[t["variant"] == v], "beyond_floor")[0] != 1] = np.nan
    scale = max(reach(d, 0.15) for d in diffs.values())  # one scale for every panel, never clipping a cell
    for c, v in enumerate(others, start=1):
        fig.add_trace(
            _heatmap(
                diffs[v],
                points,
                slots,
                _difference_detail(t[t["variant"] == v]),
                colorscale="RdBu_r",
                zmid=0,
                zmin=-scale,
                zmax=scale,
                showscale=c == len(others),
                colorbar=dict(title="Δ score"),
            ),
            row=1,
            col=c,
        )
        _mark_landmarks(fig, marks, c)
    _axes(fig, points, slots, marks, len(others))
    blank = (
        "<br><sup>grey: within the noise floor (no larger than a noise-floor variant's difference there) "
        "or not scored</sup>"
    )
    fig.update_layout(
        **LAYOUT,
        title=f"Where the manifold moves ('{probe_set}'): score minus {reference}'s{blank if beyond_floor else ''}",
        height=620,
        width=max(700, 520 * len(others)),
    )
    if beyond_floor:
        fig.update_layout(plot_bgcolor="#d0d0d0", margin=dict(t=100))
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


class ManifoldView(param.Parameterized):
    """Selection in the manifold tab: probe set, variant, which map, and the cell (residual point, token) shown as a
    projection."""

    probe_set = param.Selector(objects=[])
    variant = param.Selector(objects=[])
    view = param.Selector(
        default="score",
        objects=["score", "difference", "beyond_floor", "score_orthonormal", "rigid_gap", "score_reuse"],
    )
    point = param.Integer(default=0, bounds=(0, None))
    slot = param.Integer(default=0, bounds=(0, None))

    def __init__(self, tables: dict[str, pd.DataFrame], projections: dict, **params):
        self.scores, self.projections = tables["manifold_scores"], projections
        self.param.probe_set.objects = list(dict.fromkeys(self.scores["set"]))
        self.param.variant.objects = list(dict.fromkeys(self.scores["variant"]))
        params.setdefault("probe_set", self.param.probe_set.objects[0])
        params.setdefault("variant", self.param.variant.objects[0])
        super().__init__(**params)
        self.select_best()

    @property
    def reference(self) -> str:
        return str(self.scores["reference"].iloc[0])

    def table(self) -> pd.DataFrame:
        return self.scores[(self.scores["set"] == self.probe_set) & (self.scores["variant"] == self.variant)]

    def select_best(self) -> None:
        """Point the projection at the best cell of the source token."""
        best = best_cell(self.scores, self.probe_set, self.variant, "source")
        self.point, self.slot = int(best["point"]), int(best["slot"])

    def click(self, data: dict | None) -> None:
        """A click on a heatmap cell selects it (x = token slot, y = residual point)."""
        if data and data.get("points"):
            p = data["points"][0]
            self.param.update(point=int(p["y"]), slot=int(p["x"]))

    def heatmap(self) -> go.Figure:
        t = self.scores[self.scores["set"] == self.probe_set]
        if self.view in ("difference", "beyond_floor"):
            if self.variant == self.reference:
                return empty_figure(f"{self.variant} is the reference; pick another variant to see its difference")
            beyond = self.view == "beyond_floor"
            pair = t[t["variant"].isin([self.reference, self.variant])]
            fig = manifold_difference(pair, self.probe_set, self.reference, beyond_floor=beyond)
            if fig is None and beyond:
                return empty_figure(
                    f"no noise floor to read {self.variant} against (a noise-floor variant, or {self.variant} itself "
                    "is one); see the plain difference"
                )
            if fig is None:
                return empty_figure(
                    f"{self.variant} aligns the prompts to other tokens than {self.reference} "
                    "(another tokenizer): no cell-by-cell difference"
                )
        else:
            fig = manifold_heatmaps(t[t["variant"] == self.variant], self.probe_set, self.view)
        fig.add_trace(
            go.Scatter(
                x=[self.slot],
                y=[self.point],
                mode="markers",
                marker=dict(symbol="square-open", size=14, color="#ff00ff", line=dict(width=2)),
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.update_layout(width=None, autosize=True, height=620)
        return fig

    def cell(self) -> pd.Series | None:
        t = self.table()
        row = t[(t["point"] == self.point) & (t["slot"] == self.slot)]
        return None if row.empty else row.iloc[0]

    def projection(self) -> go.Figure:
        row = self.cell()
        key = f"{self.variant}/{self.probe_set}"
        if row is None or key not in self.projections:
            return empty_figure("no projection for this cell (the run has no manifold projections)")
        coords = self.projections[key][self.point, self.slot]
        title = (
            f"{self.variant}: token {row['slot_label']!r} at point {row['label']}<br><sup>score {row['score']:.3f}, "
            f"orthonormal {row['score_orthonormal']:.3f}, chance {row['score_chance']:.3f}</sup>"
        )
        period = row["period"] if pd.notna(row["period"]) else None
        fig = manifold_projection(coords, self.projections[f"{key}/labels"], row["shape"], title, period)
        fig.update_layout(width=None, autosize=True)
        return fig

    def landmarks(self) -> go.Figure:
        fig = manifold_landmark_curves(self.scores, self.probe_set)
        fig.update_layout(width=None, autosize=True, height=420)
        return fig


def manifold_tab(tables: dict[str, pd.DataFrame], projections: dict) -> pn.viewable.Viewable:
    view = ManifoldView(tables, projections)
    probe_set = pn.widgets.Select(
        label="probe set", options=view.param.probe_set.objects, value=view.probe_set, width=180
    )
    variant = pn.widgets.Select(label="variant", options=view.param.variant.objects, value=view.variant, width=180)
    which = pn.widgets.Select(
        label="map",
        options={
            "score (ridge)": "score",
            "difference from the reference": "difference",
            "difference beyond the noise floor": "beyond_floor",
            "score (orthonormal)": "score_orthonormal",
            "orthonormal − ridge": "rigid_gap",
            "reuse of the source token's map": "score_reuse",
        },
        value=view.view,
        width=240,
    )
    heat = pn.pane.Plotly(view.heatmap(), sizing_mode="stretch_width", css_classes=["manifold-map"])
    proj = pn.pane.Plotly(view.projection(), width=520, height=520, css_classes=["manifold-projection"])
    curves = pn.pane.Plotly(view.landmarks(), sizing_mode="stretch_width")

    def redraw_map(*_):
        heat.object = view.heatmap()

    def redraw_cell(*_):
        with pn.io.hold():
            proj.object, heat.object = view.projection(), view.heatmap()

    def new_selection(*_):
        view.select_best()
        with pn.io.hold():
            heat.object, proj.object, curves.object = view.heatmap(), view.projection(), view.landmarks()

    for widget, name in ((probe_set, "probe_set"), (variant, "variant"), (which, "view")):
        widget.param.watch(lambda e, name=name: setattr(view, name, e.new), "value")
    heat.param.watch(lambda e: view.click(e.new), "click_data")
    view.param.watch(new_selection, ["probe_set", "variant"])
    view.param.watch(redraw_map, ["view"])
    view.param.watch(redraw_cell, ["point", "slot"])
    note = pn.pane.Markdown(
        "Cross-validated SMDS score of every residual point (rows) and aligned token "
        "(columns); landmark tokens are coloured. "
        "**Click a cell** to see its held-out 2-D projection coloured by the label."
    )
    return pn.Column(pn.Row(probe_set, variant, which), note, pn.Row(heat, proj), curves)


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
        figs[f"manifold_{probe_set}_scores"] = manifold_heatmaps(s, probe_set)
        diff = manifold_difference(s, probe_set, reference)
        if diff is not None:
            figs[f"manifold_{probe_set}_difference"] = diff
        beyond = manifold_difference(s, probe_set, reference, beyond_floor=True)
        if beyond is not None:
            figs[f"manifold_{probe_set}_beyond_floor"] = beyond
        figs[f"manifold_{probe_set}_landmarks"] = manifold_landmark_curves(s, probe_set)
        figs[f"manifold_{probe_set}_rigid"] = manifold_heatmaps(s, probe_set, "rigid_gap")
        figs[f"manifold_{probe_set}_reuse"] = manifold_heatmaps(s, probe_set, "score_reuse")
        if similarity is not None and len(similarity) and reference in set(s["variant"]):
            best = best_cell(s, probe_set, reference, "source")
            figs[f"manifold_{probe_set}_similarity"] = manifold_similarity_map(
                similarity, s, probe_set, reference, int(best["point"])
            )
        if any(k.endswith(f"/{probe_set}") for k in projections):
            figs[f"manifold_{probe_set}_projections"] = manifold_projection_grid(s, projections, probe_set)
    return figs


def figures(results: Any) -> dict[str, go.Figure]:
    """Per probe set: score maps, differences from the reference, landmarks, rigid and reuse maps, projections."""
    return manifold_figures(results.tables, results.arrays.get("manifold/projections", {}))


def tabs(results: Any, selection: Any = None) -> list[tuple[str, Any]]:
    if not len(results.tables.get("manifold_scores", ())):
        return []
    return [("Manifolds", manifold_tab(results.tables, results.arrays.get("manifold/projections", {})))]
