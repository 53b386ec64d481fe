"""Dashboard: the state object's data per view (no browser), and end to end in headless Chromium."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_NODES_JS, CHROMIUM, launch_chromium, served_dashboard

from layerdrift.dashboards.app import build_app
from layerdrift.dashboards.drift import DashboardState, match_concept
from layerdrift.dashboards.selection import Selection


def test_match_concept_exact_prefix_fuzzy():
    terms = ["France", "photosynthesis", "South Korea", "electron"]
    assert match_concept("france", terms) == 0
    assert match_concept("photo", terms) == 1
    assert match_concept("photosynthesys", terms) == 1  # typo
    assert match_concept("korea", terms) == 2  # substring
    assert match_concept("zzzz", terms) is None and match_concept("  ", terms) is None


def test_state_follows_layer_pair_and_concept(tiny_run):
    state = DashboardState(tiny_run)
    assert state.layer == tiny_run.meta["headline_layer"] == 4 and state.pair == "base→tuned"
    drift = tiny_run.tables["drift"]
    final = state.top_table()
    expected = drift[(drift["pair"] == "base→tuned") & (drift["layer"] == 4)].sort_values(
        "drift", ascending=False, kind="stable"
    )
    assert list(final["term"]) == list(expected["term"])
    state.layer = 2
    mid = state.top_table()
    assert not np.allclose(mid["drift"].to_numpy(), final["drift"].to_numpy())
    np.testing.assert_allclose(
        sorted(mid["drift"]), sorted(drift[(drift["pair"] == "base→tuned") & (drift["layer"] == 2)]["drift"])
    )
    # neighbours come from the neighbours table of that variant, layer and concept
    state.concept = 3
    nb = state.neighbours("tuned")
    table = tiny_run.tables["neighbours"]
    ref = table[(table["variant"] == "tuned") & (table["layer"] == 2) & (table["concept"] == 3)]
    assert list(nb["neighbour"]) == list(ref["neighbour_term"]) and len(nb) == 3
    # the map highlights the selected concept, at the current layer
    fig = state.map_figure()
    assert fig.data[-1].name == "selected" and fig.data[-1].text[0] == state.terms[3]
    assert "layer 1" in fig.layout.title.text  # residual point 2 = block 1
    state.pair = "base→floor"
    assert state.top_table()["drift"].max() < 0.01
    state.colour, state.method = "category", "pca"
    assert "PCA" in state.map_figure().layout.title.text
    curve = state.concept_drift_figure()
    assert {t.name for t in curve.data} == {"base→tuned", "base→floor"}
    # at the embedding every prompt shares one vector: no map, no neighbours, and the reason in the map's place
    state.layer = 0
    assert state.neighbours("tuned").empty and state.map_figure().data == ()
    message = state.map_figure().layout.annotations[0].text.replace("<br>", " ")
    assert message.startswith("at embed every prompt ends in the token &#x27; is&#x27;, so all prompts share")


def test_map_frame_rings_and_layer_marks(tiny_run):
    state = DashboardState(tiny_run)
    proj = tiny_run.tables["projections"]
    state.concept = 2
    frames = []
    for layer in (2, 4):
        state.layer = layer
        fig = state.map_figure()
        frames.append((tuple(fig.layout.xaxis.range), tuple(fig.layout.yaxis.range)))
        ring = fig.data[-1]
        assert ring.name == "selected" and len(ring.x) == 2  # base and tuned are drawn, floor is not
        at = proj[(proj["layer"] == layer) & (proj["method"] == "umap") & (proj["concept"] == 2)]
        np.testing.assert_allclose(sorted(ring.x), sorted(at[at["variant"].isin(["base", "tuned"])]["x"]), rtol=1e-6)
        for curve in (state.concept_drift_figure(), state.rank_figure(), *state.metric_figures()):
            assert {s.x0 for s in curve.layout.shapes} == {layer}  # the current layer is marked on every axis
        assert len(state.rank_figure().layout.shapes) == 2  # both subplots
    assert frames[0] == frames[1]  # one frame for every layer: a step moves the points, not the axes
    (x0, x1), (y0, y1) = frames[0]
    umap = proj[proj["method"] == "umap"]
    assert x0 < umap["x"].min() and umap["x"].max() < x1 and y0 < umap["y"].min() and umap["y"].max() < y1
    state.colour = "category"
    assert len(state.map_figure().data[-1].x) == 3  # every variant is drawn


def test_drift_tab_steps_the_map_in_place_and_the_hidden_tab_later(tiny_run):
    from layerdrift.dashboards.drift import MAP_TAB, OVERVIEW_TAB, DriftTab

    tab = DriftTab(tiny_run)
    shown = tab.map_pane.object
    tab.state.layer = 2
    assert tab.map_pane.object is shown  # the same figure, its traces swapped in place ...
    fresh = tab.state.map_figure()  # ... equal to one drawn from scratch at that layer
    assert shown.layout.title.text == fresh.layout.title.text == "Joint UMAP: base → tuned (layer 1)"
    for a, b in zip(shown.data, fresh.data):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.customdata, b.customdata)
    assert tab.violin_pane.object.layout.title.text.endswith("(layer final)")  # the hidden overview waits ...
    tab.tabs.active = OVERVIEW_TAB
    assert tab.violin_pane.object.layout.title.text.endswith("(layer 1)")  # ... until it is shown
    assert not tab.map_controls.visible  # the overview has no map: no map controls
    tab.state.layer = 3
    assert tab.map_pane.object.layout.title.text.endswith("(layer 1)")
    tab.tabs.active = MAP_TAB
    assert tab.map_pane.object.layout.title.text.endswith("(layer 2)") and tab.map_controls.visible
    # a click on a point selects its concept and empties the search box
    tab.search.value = "electron"
    tab.on_map_click(type("Event", (), {"new": {"points": [{"customdata": [5, 0.01]}]}})())
    assert tab.state.concept == 5 and tab.search.value == ""


def test_experiment_views_follow_their_tables(tiny_run):
    from layerdrift.dashboards.behaviour import VectorsView
    from layerdrift.dashboards.patching import PatchingView

    t = tiny_run.tables
    view = PatchingView(t)
    assert view.param.direction.objects == ["tuned into base", "base into tuned"] and view.param.component.objects == [
        "resid",
        "attn",
    ]
    view.component = "attn"
    heat = view.heatmap()
    sel = t["patching"].query(
        "direction == 'tuned into base' and component == 'attn' and block == 1 and position == '-1'"
    )
    assert heat.data[0].z[1][1] == pytest.approx(
        sel["normalised_logit_diff"].iloc[0], nan_ok=True
    )  # columns: token -2, token -1, all
    assert list(heat.data[0].x) == ["token -2", "token -1", "all tokens"]
    assert len(view.prompt_table()) == 6 and set(view.prompt_table()["prompt"]) <= {
        f"The concept of {x} is" for x in tiny_run.meta["terms"]
    }
    vectors = VectorsView(t)
    assert vectors.param.pair.objects == ["base→tuned"] and vectors.behaviour == "behaviour"
    cos = vectors.cosine_figure()
    np.testing.assert_allclose(cos.data[0].y, t["behaviour_cosine"]["cosine"])
    vectors.variant = "tuned"
    assert "(tuned)" in vectors.cross_figure().layout.title.text
    assert {tr.name for tr in vectors.steering_figure().data} == {"base +c", "base −c", "tuned +c", "tuned −c"}
    tabs = [name for e in tiny_run.experiments for name, _ in e.tabs(tiny_run, Selection())]
    assert tabs == ["Drift", "Templates", "Patching", "Behaviour vectors", "Manifolds", "Localisation"]


def test_manifold_view_selects_cells_and_variants(tiny_run):
    from layerdrift.dashboards.manifold import ManifoldView

    t, proj = tiny_run.tables, tiny_run.arrays["manifold/projections"]
    view = ManifoldView(t, proj)
    scores = t["manifold_scores"]
    src = scores[(scores["variant"] == "base") & (scores["landmark"] == "source")]
    assert (view.point, view.slot) == (
        int(src.loc[src["score"].idxmax(), "point"]),
        int(src["slot"].iloc[0]),
    )  # starts at the best source cell
    view.click({"points": [{"x": 2, "y": 3}]})
    assert (view.point, view.slot) == (3, 2)
    heat = view.heatmap()
    cell = scores[(scores["variant"] == "base") & (scores["point"] == 3) & (scores["slot"] == 2)]["score"].iloc[0]
    assert heat.data[0].z[3][2] == pytest.approx(cell, nan_ok=True)
    assert list(heat.data[-1].x) == [2] and list(heat.data[-1].y) == [3]  # the selected cell is outlined
    fig = view.projection()
    np.testing.assert_allclose(np.c_[fig.data[0].x, fig.data[0].y], proj["base/birthday"][3, 2], atol=1e-6)
    view.param.update(variant="tuned", view="difference")
    diff = view.heatmap()
    tuned = scores[(scores["variant"] == "tuned") & (scores["point"] == 3) & (scores["slot"] == 2)]["score"].iloc[0]
    assert (
        diff.data[0].z[3][2] == pytest.approx(tuned - cell, nan_ok=True)
        and "tuned − base" in diff.layout.annotations[0].text
    )


def test_build_app_makes_a_layout(tiny_run):
    app = build_app(tiny_run)
    title, tabs = app.objects  # the shell: a title and one tab per experiment, in registry order
    assert "compared against **base**" in title.object
    assert tabs._names == ["Drift", "Templates", "Patching", "Behaviour vectors", "Manifolds", "Localisation"]


def test_dashboard_cli_errors_clearly(tmp_path, capsys):
    from layerdrift.workbench.cli import main

    assert main(["dashboard", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# true once the concept's drift curve (found through Panel's shadow roots) marks residual point ``layer``
CURVE_MARKED_AT = (
    """(layer) => {
  const curve = """
    + ALL_NODES_JS
    + """.find((n) => n.classList && n.classList.contains('js-plotly-plot')
                          && (n.querySelector('.gtitle') || {}).textContent?.includes('cosine drift across layers'));
  return !!curve && (curve.layout.shapes || []).some((s) => s.x0 === layer);
}"""
)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make setup installs Debian's chromium as root)"
)
def test_dashboard_in_headless_chromium(tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    with served_dashboard(tiny_run.store.root) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/")
        page.wait_for_selector(".js-plotly-plot", timeout=60000)
        page.get_by_text("residual point 4 of 4").wait_for(timeout=20000)
        assert page.get_by_text("Joint UMAP: base → tuned (layer final)").count() == 1
        page.locator("button.previous").click()  # step the layer slider back one
        page.get_by_text("residual point 3 of 4").wait_for(timeout=20000)
        page.get_by_text("Joint UMAP: base → tuned (layer 2)").wait_for(timeout=20000)
        page.wait_for_url("**layer=3**", timeout=10000)  # the URL keeps the state
        page.wait_for_function(CURVE_MARKED_AT, arg=3, timeout=10000)  # the concept's curve marks the new layer
        box = page.locator("input[placeholder='type a concept…']")
        box.fill("electro")
        box.press("Enter")
        page.get_by_text("selected: electron").wait_for(timeout=20000)
        table = tiny_run.tables["neighbours"]
        concept = tiny_run.meta["terms"].index("electron")
        expected = table[(table["variant"] == "base") & (table["layer"] == 3) & (table["concept"] == concept)][
            "neighbour_term"
        ].iloc[0]
        page.get_by_text("electron: cosine drift across layers").wait_for(timeout=20000)
        assert page.locator(".nb-base").get_by_text(expected, exact=True).count() >= 1
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 20000
        page.get_by_text("Patching", exact=True).click()
        page.get_by_text("Patching tuned into base: resid output").wait_for(timeout=20000)
        page.get_by_text("Behaviour vectors", exact=True).click()
        page.get_by_text("Behaviour vectors, base→tuned: cosine per layer").wait_for(timeout=20000)
        page.get_by_text("Localisation", exact=True).click()  # the concept picked on the Drift tab: its read-out
        page.get_by_text("Lens read-out: electron").wait_for(timeout=20000)
        assert page.locator(".readout tr.current").count() == 1
        page.get_by_text("Manifolds", exact=True).click()
        page.get_by_text("SMDS score (ridge map, held-out): probe set 'birthday'").wait_for(timeout=20000)
        area = page.locator(".manifold-map .nsewdrag").first.bounding_box()
        assert page.get_by_text("at point 0").count() == 0  # the projection starts at the best source cell
        page.mouse.click(
            area["x"] + area["width"] * 0.97, area["y"] + area["height"] * 0.7
        )  # a late token at block 0's output
        page.get_by_text("at point 0").wait_for(timeout=20000)  # the projection follows the click
        # a shared URL restores the view
        shared = browser.new_page(viewport={"width": 1920, "height": 1080})
        shared.goto(f"{url}/?layer=1&concept=4&pair=base%E2%86%92floor")
        shared.get_by_text("residual point 1 of 4").wait_for(timeout=30000)
        shared.get_by_text(f"selected: {tiny_run.meta['terms'][4]}").wait_for(timeout=20000)
        shared.get_by_text("Joint UMAP: base → floor (layer 0)").wait_for(timeout=20000)
        browser.close()


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make setup installs Debian's chromium as root)"
)
def test_hostile_terms_render_as_text_on_every_tab(tiny_run, tmp_path):
    """Terms and categories that are markup or formulas: no script runs on any tab, the text shows literally, the CSV is
    inert."""
    from conftest import HOSTILE_ROWS, TINY_TEMPLATES
    from playwright.sync_api import sync_playwright

    terms = tiny_run.meta["terms"]
    img, script = HOSTILE_ROWS[0][0], HOSTILE_ROWS[1][0]
    dialogs: list[str] = []
    with served_dashboard(tiny_run.store.root) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{url}/?concept={terms.index(img)}")  # opened by URL
        page.get_by_text(f"selected: {img} ({HOSTILE_ROWS[0][1]})").wait_for(timeout=60000)
        box = page.locator("input[placeholder='type a concept…']")
        box.fill(script)  # searched
        box.press("Enter")
        page.get_by_text(f"selected: {script}").wait_for(timeout=20000)
        box.fill("<iframe src=javascript:alert(5)>")  # a search that matches nothing echoes the text
        box.press("Enter")
        page.get_by_text("no concept matches <iframe src=javascript:alert(5)>").wait_for(timeout=20000)
        bold = HOSTILE_ROWS[3][0]
        page.goto(f"{url}/?concept={terms.index(bold)}")
        page.get_by_text(f"selected: {bold} (abstract)").wait_for(timeout=60000)
        with page.expect_download() as download:
            page.get_by_text("layer table as CSV").click()
        csv_text = Path(download.value.path()).read_text(encoding="utf-8")
        assert "'=HYPERLINK(" in csv_text and re.search(r'(^|,)"?=HYPERLINK', csv_text, re.M) is None
        tabs = {
            "Overview": "Top drifters at this layer",
            "Patching": "Patching tuned into base: resid output",
            "Behaviour vectors": "Behaviour vectors, base→tuned: cosine per layer",
            "Manifolds": "SMDS score (ridge map, held-out): probe set 'birthday'",
            "Templates": TINY_TEMPLATES[1],  # the template's own markup shown as text
        }
        for tab, shown in tabs.items():  # every tab drawn, with the hostile rows in its tables and figures
            page.get_by_text(tab, exact=True).click()
            page.get_by_text(shown).first.wait_for(timeout=20000)
        page.get_by_text("Patching", exact=True).click()
        page.get_by_text(f"The concept of {img} is").first.wait_for(
            timeout=20000
        )  # the patched prompts table shows it as text
        page.get_by_text("Templates", exact=True).click()
        page.get_by_text(TINY_TEMPLATES[1].replace("{term}", "love")).first.wait_for(timeout=20000)
        assert page.locator("b:has-text('love')").count() == 0
        page.mouse.move(10, 10)
        page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        assert page.locator("img[src='x'], iframe").count() == 0
        assert page.locator("a[href^='javascript']").count() == 0
        report = tiny_run.store.root / "report"
        for html_file in (
            "index.html",
            "figures/top_drifters_base_vs_tuned.html",
            "figures/umap_by_category.html",
            "figures/category_violins.html",
        ):
            page.goto(f"file://{report / html_file}")
            page.wait_for_selector(".js-plotly-plot, table", timeout=20000)
            assert page.locator("img[src='x'], script:has-text('alert(3)')").count() == 0, html_file
        page.goto(f"file://{report / 'index.html'}")
        assert page.get_by_text(img).count() >= 1  # the top-drifter table shows the term as text
        browser.close()
    assert dialogs == []


def test_report_is_written_once_and_again_when_a_file_is_damaged(tiny_run, tmp_path):
    """The same results by the same code give the same report: a second write changes nothing; a missing or altered
    file makes it write the whole report again (never a report that silently lacks a piece)."""
    from layerdrift.dashboards.report import STAMP, write_report

    folder = tmp_path / "report"
    write_report(tiny_run, (), folder=str(folder))
    stamp = json.loads((folder / STAMP).read_text())
    assert "index.html" in stamp["files"] and any(f.startswith("figures/") for f in stamp["files"])
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    write_report(tiny_run, (), folder=str(folder))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before  # nothing rewritten
    figure = next(p for p in folder.glob("figures/*.html"))
    figure.unlink()
    (folder / "tables" / "pairs.csv").write_text("damaged")
    write_report(tiny_run, (), folder=str(folder))
    assert figure.is_file() and (folder / "tables" / "pairs.csv").read_text() != "damaged"
    again = json.loads((folder / STAMP).read_text())
    assert again["key"] == stamp["key"] and again["files"].keys() == stamp["files"].keys()  # every file, again
    tables = {f: h for f, h in stamp["files"].items() if f.startswith("tables/")}
    assert tables == {f: h for f, h in again["files"].items() if f.startswith("tables/")}  # the same tables


def test_localisation_tab_moves_the_drift_player_and_reads_out_the_selected_concept(tiny_run):
    """One selection per session: a click on a depth in the Localisation tab moves the Drift tab's player, and the
    concept picked on the Drift tab is the one read out (its tokens escaped, the current point highlighted)."""
    from types import SimpleNamespace

    from layerdrift.dashboards.drift import DriftTab
    from layerdrift.dashboards.lens import LocalisationTab
    from layerdrift.dashboards.selection import follow

    selection = Selection()
    drift = DriftTab(tiny_run)
    follow(selection, drift.state)
    tab = LocalisationTab(tiny_run, selection)
    labels = tab.labels
    tab.on_click(SimpleNamespace(new={"points": [{"x": labels[2], "y": 0.5}]}))
    assert selection.layer == 2 and drift.state.layer == 2 and drift.layer.value == 2
    assert [s.x0 for s in tab.curves.object.layout.shapes] == [2]  # the curves mark the new point
    drift.state.concept = 5
    top = tiny_run.tables["lens_top"].query("concept == 5 and rank == 1")
    pair = tiny_run.meta["pairs"][0]
    assert tab.pair.value == pair["label"] and f"Lens read-out: **{tiny_run.meta['terms'][5]}" in tab.concept.object
    rows = tab.readout.object.split("<tr")[2:]  # past the header
    assert len(rows) == len(labels) and rows[2].startswith(" class=current")
    for i, row in enumerate(rows):
        for v in (pair["a"], pair["b"]):
            token = top[(top.variant == v) & (top.layer == i)]["token"].iloc[0]
            assert html.escape(token.replace(" ", "␣")) in row


def test_drift_over_floor_map_is_the_log_ratio_of_the_layers_table(tiny_run):
    from layerdrift.dashboards.lens import drift_over_floor_map

    layers = tiny_run.tables["layers"]
    fig = drift_over_floor_map(layers)
    floor = layers[layers.floor].set_index("layer")["drift_mean"]
    main = layers[~layers.floor]
    assert list(fig.data[0].y) == list(dict.fromkeys(main.pair))
    for i, (_, g) in enumerate(main.groupby("pair", sort=False)):
        want = np.log10(g.set_index("layer")["drift_mean"] / floor)
        np.testing.assert_allclose(np.asarray(fig.data[0].z[i], float), want.where(np.isfinite(want)).to_numpy())
