"""SmolLM2-135M-Instruct (30 blocks, d 576) against Gemma 3 270M (18 blocks, d 640): compared at matched relative
depth in the tables, and shown without a traceback in the dashboard."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CHROMIUM, feature_cka, launch_chromium, make_config, served_dashboard

from layerdrift import run

pytestmark = pytest.mark.integration
PAIR = "smollm2→gemma"


@pytest.fixture(scope="module")
def smol_vs_gemma(tmp_path_factory):
    from importlib.resources import files

    folder = tmp_path_factory.mktemp("smol-vs-gemma")
    rows = (files("layerdrift.concepts") / "data" / "embeddingdrift-235.tsv").read_text(encoding="utf-8").splitlines()
    vocab = folder / "vocab.tsv"
    vocab.write_text("\n".join([rows[0], *rows[1::10]]) + "\n", encoding="utf-8")  # 24 concepts, every category
    variants = {"smollm2": "smollm2-135m-instruct", "gemma": "gemma3-270m"}
    cfg = make_config(folder / "run", variants, vocab, name="smol-vs-gemma", analysis={"align": "procrustes"})
    return run(cfg, quiet=True)


def test_matched_depth_cka_jaccard_and_aligned_drift(smol_vs_gemma):
    layers = smol_vs_gemma.tables["layers"]
    pair = layers[layers["pair"] == PAIR]
    assert len(pair) == 20, "one row per point of the shallower model"
    assert tuple(pair[["label_a", "label_b"]].iloc[0]) == ("embed", "embed")
    assert tuple(pair[["label_a", "label_b"]].iloc[-1]) == ("final", "final")
    assert tuple(pair[["label_a", "label_b"]].iloc[10]) == ("16", "9")  # block 10 of 18 -> block 17 of 30
    later = pair.iloc[1:]
    assert later["cka"].between(0, 1).all() and later["jaccard_mean"].between(0, 1).all()
    assert later["drift_mean"].gt(0).all() and pair["aligned"].all()
    store = smol_vs_gemma.store
    final_a, final_b = store.layer("smollm2", "concepts", -1), store.layer("gemma", "concepts", -1)
    assert pair["cka"].iloc[-1] == pytest.approx(feature_cka(final_a.astype(float), final_b.astype(float)), abs=1e-6)
    headline = smol_vs_gemma.tables["pairs"].set_index("pair").loc[PAIR]
    assert bool(headline["aligned"]) and headline["mean"] == pytest.approx(pair["drift_mean"].iloc[-1])
    assert any("after Procrustes alignment" in f for f in smol_vs_gemma.findings())
    cross = smol_vs_gemma.tables["cka_cross"]
    assert len(cross[cross["pair"] == PAIR]) == 32 * 20 and np.isfinite(cross["cka"]).sum() >= 31 * 19


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs Debian's chromium)")
def test_dashboard_opens_and_steps_on_a_cross_architecture_run(smol_vs_gemma):
    from playwright.sync_api import sync_playwright

    with served_dashboard(smol_vs_gemma.store.root) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{url}/?layer=5")
        page.get_by_text("residual point 5 of 31").wait_for(timeout=60000)
        page.get_by_text("joint maps need every variant in one space").wait_for(timeout=20000)
        page.get_by_text("gemma at its layer 2 (point 3 of 19)").wait_for(timeout=20000)
        page.locator("button.previous").click()  # point 4 has no gemma point matched to it
        page.get_by_text("residual point 4 of 31").wait_for(timeout=20000)
        page.get_by_text("smollm2→gemma is compared at layer 2, its nearest matched point").wait_for(timeout=20000)
        page.get_by_text("Overview", exact=True).click()
        page.get_by_text("Cross-layer CKA").first.wait_for(timeout=20000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "KeyError" not in body
        browser.close()
