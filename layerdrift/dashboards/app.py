"""The run dashboard: step through layers, look up any concept, compare variant pairs.

Everything shown comes from the run's result tables (``layerdrift.open_run``) through the same
figure builders as the report; nothing is recomputed here. State (layer, pair, concept) lives in
one ``DashboardState`` whose data methods are plain functions of the tables, so they are
unit-tested without a browser; the Panel layout only wires widgets to it.
"""

from __future__ import annotations

import difflib
import io

import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from layerdrift import figures as F
from layerdrift.dashboards.experiments import experiment_tabs
from layerdrift.dashboards.markup import md
from layerdrift.workbench.manifold_run import load_projections
from layerdrift.workbench.runs import Run
from layerdrift.workbench.spreadsheet import to_csv


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

    def __init__(self, run: Run, **params):
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
        self._projection_layers = (
            sorted(set(run.tables["projections"]["layer"])) if len(run.tables["projections"]) else []
        )
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

    def layer_drift(self) -> pd.DataFrame:
        """Per-concept drift and percentile of the selected pair at the selected layer."""
        return self._drift_by.get(
            (self.pair, self.layer),
            pd.DataFrame(columns=["concept", "term", "category", "drift", "percentile", "jaccard"]),
        )

    def top_table(self, n: int = 30) -> pd.DataFrame:
        d = self.layer_drift().sort_values("drift", ascending=False, kind="stable").head(n)
        return d[["term", "category", "drift", "percentile", "jaccard"]].reset_index(drop=True)

    def neighbours(self, variant: str) -> pd.DataFrame:
        """The selected concept's k nearest neighbours in one variant at the layer."""
        t = self._neighbours.get((variant, self.layer))
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

    def projection_layer(self) -> int | None:
        """The selected layer if it has a projection, else the nearest one that has."""
        if not self._projection_layers:
            return None
        return min(self._projection_layers, key=lambda layer: abs(layer - self.layer))

    # ---- figures -----------------------------------------------------------------------
    def map_figure(self) -> go.Figure:
        layer = self.projection_layer()
        proj = self.run.tables["projections"]
        if layer is None:
            return _empty("no projections in this run (analysis.umap_layers)")
        info = self.pair_info
        if self.colour == "category":
            fig = F.umap_by_category(proj, layer, self.terms, self.categories, self.method)
        else:
            fig = F.umap_trajectories(
                proj,
                self.run.tables["drift"],
                info["a"],
                info["b"],
                info["label"],
                layer,
                self.terms,
                self.categories,
                self.method,
            )
        sel = proj[(proj["layer"] == layer) & (proj["method"] == self.method) & (proj["concept"] == self.concept)]
        fig.add_trace(
            go.Scatter(
                x=sel["x"],
                y=sel["y"],
                mode="markers+text",
                text=[self.terms[self.concept]] + [""] * (len(sel) - 1),
                textposition="top center",
                marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#00a0ff", width=3)),
                name="selected",
                hoverinfo="skip",
            )
        )
        fig.update_layout(height=560, width=None, autosize=True, margin=dict(l=50, r=20, t=50, b=40))
        return fig

    def concept_drift_figure(self) -> go.Figure:
        return F.concept_layer_curves(
            self.run.tables["drift"], self.concept, self.terms[self.concept], "drift", self.pairs
        )

    def concept_jaccard_figure(self) -> go.Figure:
        return F.concept_layer_curves(
            self.run.tables["drift"], self.concept, self.terms[self.concept], "jaccard", self.pairs
        )

    def violin_figure(self) -> go.Figure:
        fig = F.category_violins(
            self.run.tables["drift"], [self.pair], self.layer, self.categories, self.labels[self.layer]
        )
        fig.update_layout(width=None, autosize=True, height=380)
        return fig

    def cka_figure(self) -> go.Figure:
        fig = F.cka_curves(self.run.tables["layers"])
        fig.update_layout(height=360, legend=dict(orientation="h", y=-0.35))
        return fig

    def heatmap_figure(self) -> go.Figure:
        cross = self.run.tables["cka_cross"]
        if cross.empty:
            return _empty("no cross-layer CKA in this run")
        pairs = list(dict.fromkeys(cross["pair"]))
        pair = self.pair if self.pair in pairs else pairs[0]
        fig = F.cka_heatmap(cross, pair)
        fig.update_layout(height=480, width=None, autosize=True)
        return fig

    def rank_figure(self) -> go.Figure:
        fig = F.effective_rank_curves(self.run.tables["effective_rank"])
        fig.update_layout(height=360, width=None, autosize=True)
        return fig


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(**F.LAYOUT, height=300)
    return fig


def build_app(run: Run) -> pn.viewable.Viewable:
    """The Panel layout for one browser session."""
    pn.extension("plotly", "tabulator", sizing_mode="stretch_width", notifications=True)
    state = DashboardState(run)
    labels = state.labels

    layer = pn.widgets.Player(
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
    layer_text = pn.pane.Markdown(width=320, css_classes=["layer-label"], margin=(22, 10, 0, 10))
    pair = pn.widgets.Select(label="variant pair", options=state.param.pair.objects, value=state.pair, width=240)
    method = pn.widgets.RadioButtonGroup(label="map", options=["umap", "pca"], value=state.method, width=140)
    colour = pn.widgets.RadioButtonGroup(label="colour", options=["drift", "category"], value=state.colour, width=170)
    search = pn.widgets.AutocompleteInput(
        label="concept",
        options=state.terms,
        case_sensitive=False,
        search_strategy="includes",
        placeholder="type a concept…",
        width=240,
        restrict=False,
    )
    found = pn.pane.Markdown(css_classes=["found"], width=320, margin=(22, 10, 0, 10))

    map_pane = pn.pane.Plotly(state.map_figure(), sizing_mode="stretch_width", css_classes=["map-pane"])
    drift_pane = pn.pane.Plotly(state.concept_drift_figure(), sizing_mode="stretch_width")
    jaccard_pane = pn.pane.Plotly(state.concept_jaccard_figure(), sizing_mode="stretch_width")
    violin_pane = pn.pane.Plotly(state.violin_figure(), sizing_mode="stretch_width")
    cka_pane = pn.pane.Plotly(state.cka_figure(), sizing_mode="stretch_width")
    heat_pane = pn.pane.Plotly(state.heatmap_figure(), sizing_mode="stretch_width")
    rank_pane = pn.pane.Plotly(state.rank_figure(), sizing_mode="stretch_width")
    top = pn.widgets.Tabulator(
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
    variants = run.meta["variants"]
    neighbour_tables = {
        v: pn.widgets.Tabulator(
            state.neighbours(v),
            disabled=True,
            show_index=False,
            hidden_columns=["rank"],
            formatters={"similarity": {"type": "money", "precision": 3}},
            titles={"similarity": "cos"},
            layout="fit_data_stretch",
            height=300,
            css_classes=[f"nb-{v}"],
        )
        for v in variants
    }

    def selected_text() -> str:
        return md(
            "selected: **{term}** ({category})",
            term=state.terms[state.concept],
            category=state.categories[state.concept],
        )

    def update_layer_text() -> None:
        layer_text.object = md(
            "**layer {label}** (residual point {i} of {n})", label=labels[state.layer], i=state.layer, n=len(labels) - 1
        )

    def redraw_layer(*_):
        with pn.io.hold():  # one message to the browser for all views
            update_layer_text()
            map_pane.object = state.map_figure()
            violin_pane.object = state.violin_figure()
            top.value = state.top_table()
            for v, table in neighbour_tables.items():
                table.value = state.neighbours(v)

    def redraw_concept(*_):
        with pn.io.hold():
            found.object = selected_text()
            map_pane.object = state.map_figure()
            for v, table in neighbour_tables.items():
                table.value = state.neighbours(v)
            drift_pane.object = state.concept_drift_figure()
            jaccard_pane.object = state.concept_jaccard_figure()

    def redraw_pair(*_):
        with pn.io.hold():
            map_pane.object = state.map_figure()
            violin_pane.object = state.violin_figure()
            top.value = state.top_table()
            heat_pane.object = state.heatmap_figure()

    # widgets -> state
    layer.param.watch(lambda e: setattr(state, "layer", int(e.new)), "value")
    pair.param.watch(lambda e: setattr(state, "pair", e.new), "value")
    method.param.watch(lambda e: setattr(state, "method", e.new), "value")
    colour.param.watch(lambda e: setattr(state, "colour", e.new), "value")

    def on_search(event):
        idx = match_concept(event.new or "", state.terms)
        if idx is None:
            found.object = md("no concept matches *{query}*", query=event.new)
        else:
            state.concept = idx

    search.param.watch(on_search, "value")

    def on_map_click(event):
        points = (event.new or {}).get("points") or []
        if points and points[0].get("customdata") is not None:
            c = points[0]["customdata"]
            c = c[0] if isinstance(c, list) else c
            if isinstance(c, (int, float)) and c >= 0:
                state.concept = int(c)

    map_pane.param.watch(on_map_click, "click_data")

    def on_heat_click(event):
        points = (event.new or {}).get("points") or []
        if points:
            label = str(points[0].get("y"))
            if label in labels:
                layer.value = labels.index(label)

    heat_pane.param.watch(on_heat_click, "click_data")
    # state -> views (also when the URL sets the state)
    state.param.watch(redraw_layer, "layer")
    state.param.watch(redraw_concept, "concept")
    state.param.watch(redraw_pair, "pair")
    state.param.watch(lambda e: setattr(map_pane, "object", state.map_figure()), ["method", "colour"])
    state.param.watch(lambda e: setattr(layer, "value", e.new), "layer")
    state.param.watch(lambda e: setattr(pair, "value", e.new), "pair")
    if pn.state.location is not None:
        pn.state.location.sync(state, {"layer": "layer", "pair": "pair", "concept": "concept"})

    def csv_download():
        buf = io.StringIO()
        to_csv(state.layer_drift(), buf)
        buf.seek(0)
        return buf

    def html_download():
        return io.StringIO(state.map_figure().to_html(include_plotlyjs="cdn"))

    export = pn.Column(
        pn.Row(
            pn.widgets.FileDownload(
                callback=csv_download, filename="layer_drift.csv", label="layer table as CSV", color="light", width=170
            ),
            pn.widgets.FileDownload(
                callback=html_download, filename="map.html", label="map as HTML", color="light", width=150
            ),
        ),
        pn.pane.Markdown("PNG: the camera icon on any figure", margin=(0, 10)),
    )
    update_layer_text()
    found.object = selected_text()
    controls = pn.Column(
        pn.Row(layer, layer_text, export),
        pn.Row(
            pair,
            pn.Column(pn.pane.Markdown("map", margin=(0, 10)), method),
            pn.Column(pn.pane.Markdown("colour", margin=(0, 10)), colour),
            search,
            found,
        ),
    )
    concept_panel = pn.Column(
        pn.pane.Markdown("### Concept"),
        drift_pane,
        pn.Row(*[pn.Column(pn.pane.Markdown(md("**{v}** neighbours", v=v)), t) for v, t in neighbour_tables.items()]),
        jaccard_pane,
    )
    overview = pn.Column(
        pn.Row(pn.Column(pn.pane.Markdown("### Top drifters at this layer"), top), violin_pane),
        pn.Row(cka_pane, rank_pane),
        heat_pane,
    )
    tabs = pn.Tabs(
        ("Map & concept", pn.Row(pn.Column(map_pane, sizing_mode="stretch_width"), concept_panel)),
        ("Overview", overview),
        *experiment_tabs(run.tables, load_projections(run.store.root), run.meta.get("terms")),
        dynamic=False,
    )
    title = md(
        "## layerdrift · {name} · reference {reference}",
        name=run.store.manifest["config"]["name"],
        reference=run.meta["reference"],
    )
    return pn.Column(pn.pane.Markdown(title), controls, tabs, sizing_mode="stretch_width")


def serve(run_dir: str, port: int = 5006, address: str = "127.0.0.1", show: bool = False) -> None:
    """Serve the dashboard for a run folder (localhost unless another address is asked for)."""
    from layerdrift.workbench.runs import open_run

    run = open_run(run_dir)  # fail before the server starts: missing run, no analyses, old format
    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    pn.serve(
        {"/": lambda: build_app(run)},
        port=port,
        address=address,
        show=show,
        websocket_origin=origins,
        title="layerdrift",
        threaded=False,
        print_url=True,
    )
