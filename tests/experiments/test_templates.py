"""Template ensembles: config, capture per template, per-template and pooled tables, findings on planted effects.

The tiny models carry two planted effects (``planted_variants``): ``demog`` moves the two demographic terms' token
embeddings, which every template contains, so "demographic drifts most" must hold in every template; ``marked``
moves the embedding of '#', which only template 2 contains, so its drift is exactly zero under template 1 and the
finding "above the noise floor" must hold in one template of two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import VOCAB_TEXT, derive_tiny_llama, floor_of, make_config

from layerdrift.analyses.ensemble import holds_in, pooled_mean
from layerdrift.analyses.uncertainty import bootstrap_mean_ci
from layerdrift.concepts.templates import ENSEMBLES
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.config import config_from_dict

TEMPLATES = ["The concept of {term} is", "# {term} is"]
N_BOOT = 100


def bump_embeddings(tokens: list[str], source):
    """An edit adding 3 standard deviations of noise to the embedding rows of ``tokens``."""
    import torch
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(source).convert_tokens_to_ids(tokens)

    def edit(model):
        gen = torch.Generator().manual_seed(5)
        emb = model.model.embed_tokens.weight
        for i in ids:
            emb[i] += 3 * emb.std() * torch.randn(emb.shape[1], generator=gen)

    return edit


@pytest.fixture(scope="module")
def ensemble_run(tiny_model, tmp_path_factory):
    from layerdrift import run

    root = tmp_path_factory.mktemp("ensemble")
    demog = derive_tiny_llama(tiny_model, root / "demog", bump_embeddings(["Ġnurse", "Ġteenager"], tiny_model))
    marked = derive_tiny_llama(tiny_model, root / "marked", bump_embeddings(["#"], tiny_model))
    (root / "vocab.tsv").write_text(VOCAB_TEXT, encoding="utf-8")
    cfg = make_config(
        root / "run",
        {"base": tiny_model, "demog": demog, "marked": marked, "floor": floor_of(tiny_model)},
        capture={},
        analysis={"umap_layers": [], "n_perm": 2000, "n_boot": N_BOOT},
        prompt_sets=[{"name": "concepts", "vocabulary": str(root / "vocab.tsv"), "templates": TEMPLATES}],
    )
    return run(cfg, quiet=True), cfg


def test_a_planted_template_dependent_effect_holds_in_one_template(ensemble_run):
    result, _ = ensemble_run
    t = result.tables
    drift = t["template_drift"]
    marked = drift[drift["pair"] == "base→marked"]
    assert np.abs(marked[marked["template"] == 1]["drift"]).max() < 1e-12  # '#' is not in template 1
    assert marked[marked["template"] == 2]["drift"].min() > 1e-3
    pooled = t["ensemble_pairs"].set_index("pair")
    assert pooled.loc["base→marked", "above_floor_in"] == 1
    assert np.isnan(pooled.loc["base→floor", "above_floor_in"])
    finding = next(f for f in result.findings() if f.startswith("Over 2 templates, base→marked"))
    assert "above the noise floor in 1 of 2 templates (not in template 1): depends on the template." in finding
    order = next(f for f in result.findings() if f.startswith("Ordered by drift"))
    assert order.startswith("Ordered by drift, base→marked > base→demog") and "in 1 of 2 templates" in order


def test_a_planted_effect_in_every_template_holds_for_every_template(ensemble_run):
    result, _ = ensemble_run
    t = result.tables
    drift = t["template_drift"]
    demog = drift[drift["pair"] == "base→demog"]
    assert np.abs(demog[demog["category"] != "demographic"]["drift"]).max() < 1e-12
    cats = t["ensemble_categories"].set_index(["pair", "category"])
    row = cats.loc[("base→demog", "demographic")]
    assert (row["top_in"], row["higher_in"]) == (2, 2)
    finding = next(f for f in result.findings() if f.startswith("base→demog moves demographic concepts most in"))
    assert "most in 2 of 2 templates" in finding and finding.endswith("holds for every template.")


def test_pooled_tables_agree_with_the_per_template_tables(ensemble_run):
    result, _ = ensemble_run
    t = result.tables
    for pair, own in t["template_drift"].groupby("pair"):
        x = own.pivot(index="template", columns="concept", values="drift").to_numpy()
        row = t["ensemble_pairs"].set_index("pair").loc[pair]
        per_template = t["template_pairs"].set_index(["pair", "template"]).loc[pair]["mean"]
        assert row["mean"] == pytest.approx(x.mean(), abs=1e-15)
        assert row["mean"] == pytest.approx(per_template.mean(), abs=1e-15)
        assert row["template_sd"] == pytest.approx(per_template.std(ddof=1), abs=1e-15)
        assert (row["template_min"], row["template_max"]) == (per_template.min(), per_template.max())
        low, high = bootstrap_mean_ci(x.mean(axis=0), n_boot=N_BOOT, seed=0)  # concepts resampled, templates paired
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    layers = t["ensemble_layers"]
    by_hand = t["template_layers"].groupby(["pair", "layer"])["drift_mean"].agg(["mean", "min", "max"])
    merged = layers.set_index(["pair", "layer"]).join(by_hand)
    np.testing.assert_allclose(merged["drift_mean"], merged["mean"], equal_nan=True)
    np.testing.assert_allclose(merged["drift_template_max"], merged["max"], equal_nan=True)


def test_template_one_is_the_drift_analysis_and_template_two_its_own_prompt_set(ensemble_run):
    from layerdrift.workbench.experiments.drift import analyze

    result, cfg = ensemble_run
    t = result.tables
    first = t["template_pairs"][t["template_pairs"]["template"] == 1].drop(columns="template")
    pd.testing.assert_frame_equal(first.reset_index(drop=True), t["pairs"][first.columns])
    assert result.store.prompt_sets == ["concepts", "concepts.t2"]
    texts = result.store.tokenization("base", "concepts.t2")["texts"]
    assert texts[0] == "# love is"
    spec = cfg.analysis.model_copy(update={"prompt_set": "concepts.t2"})
    second = analyze(result.store, spec, cfg.seed).tables["pairs"]
    mine = t["template_pairs"][t["template_pairs"]["template"] == 2].drop(columns="template")
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), second[mine.columns])


def test_the_report_has_the_ensemble_section(ensemble_run):
    result, _ = ensemble_run
    page = result.report.read_text(encoding="utf-8")
    assert '<section id="templates"><h2>Template ensemble</h2>' in page
    assert "# {term} is" in page
    latex = (result.report.parent / "latex" / "template-ensemble.tex").read_text(encoding="utf-8")
    assert r"2 & concepts.t2 & \# \{term\} is & \# love is \\" in latex  # the template escaped for LaTeX
    figures = result.figures_by_experiment["templates"]
    assert {"template_pairs", "template_drift_by_layer", "template_categories_base_vs_demog"} <= set(figures)
    bars = [tr for tr in figures["template_pairs"].data if tr.name == "pooled"][0]
    pooled = result.tables["ensemble_pairs"].set_index("pair")["mean"]
    np.testing.assert_allclose(bars.y, pooled.loc[list(bars.x)].to_numpy())


def test_pooled_mean_known_case():
    out = pooled_mean(np.array([[1.0, 2.0, 3.0, np.nan], [3.0, 4.0, 5.0, 9.0]]), n_boot=200, seed=0)
    assert out["mean"] == 3.0  # the NaN concept left out in both templates
    assert out["template_sd"] == pytest.approx(np.sqrt(2.0))
    assert (out["template_min"], out["template_max"]) == (2.0, 4.0)
    assert 2.0 <= out["ci_low"] <= 3.0 <= out["ci_high"] <= 4.0
    assert holds_in([True, False, True]) == 2


def config_with(prompt_set: dict, tmp_path) -> dict:
    return {"name": "t", "out": str(tmp_path), "variants": [{"name": "a", "source": "x"}], "prompt_sets": [prompt_set]}


def test_a_named_ensemble_and_the_captured_prompt_sets(tmp_path):
    cfg = config_from_dict(config_with({"name": "c", "templates": "default"}, tmp_path))
    (ps,) = cfg.prompt_sets
    assert ps.templates == list(ENSEMBLES["default"]) and ps.template == ENSEMBLES["default"][0]
    captured = cfg.captured_prompt_sets()
    assert [p.name for p in captured] == ["c", "c.t2", "c.t3", "c.t4"]
    assert [p.template for p in captured] == list(ENSEMBLES["default"])
    again = config_from_dict(cfg.model_dump(mode="json"))  # a manifest's config loads back to the same config
    assert again.hash() == cfg.hash()


@pytest.mark.parametrize(
    ("prompt_set", "message"),
    [
        ({"templates": ["{term} is", "{term} is"]}, "a template is listed twice"),
        ({"templates": ["{term} is", "nothing here"]}, "template 2 ('nothing here') must contain '{term}'"),
        ({"templates": ["{term} is"]}, "an ensemble needs at least two templates"),
        ({"templates": "mine"}, "there is no built-in template ensemble 'mine'"),
        ({"template": "A {term}", "templates": ["B {term}", "C {term}"]}, "give either template or templates"),
    ],
)
def test_a_wrong_ensemble_is_refused_in_one_sentence(prompt_set, message, tmp_path):
    with pytest.raises(LayerdriftError, match="prompt_sets") as info:
        config_from_dict(config_with({"name": "c", **prompt_set}, tmp_path))
    assert message in str(info.value)


def test_the_templates_table_has_one_row_per_template_whatever_its_text():
    from layerdrift.dashboards.templates import templates_table

    table = templates_table({"templates": ["Q: What is {term}?\nA:", "<b>{term}</b> | x"], "example_term": "a|b"})
    rows = table.splitlines()
    assert len(rows) == 4 and all(r.count("|") == 4 for r in rows)  # line breaks, pipes: text


def test_a_table_no_template_has_rows_of_stays_empty():
    from layerdrift.workbench.config import AnalysisSpec
    from layerdrift.workbench.experiments.templates import ensemble_categories, ensemble_pairs, numbered

    one = {"template_layers": pd.DataFrame({"pair": ["a→b"]}), "template_pairs": pd.DataFrame()}
    one |= {"template_categories": pd.DataFrame(), "template_drift": pd.DataFrame()}
    joined = numbered([one, one])  # e.g. variants of different widths: Jaccard per layer, no drift to pool
    assert list(joined["template_layers"]["template"]) == [1, 2] and joined["template_pairs"].empty
    pooled, cats = ensemble_pairs(joined, AnalysisSpec(), 0), ensemble_categories(joined, AnalysisSpec(), 0)
    assert pooled.empty and {"pair", "floor", "above_floor_in"} <= set(pooled) and cats.empty and "top_in" in cats
