"""`layerdrift run` end to end on tiny models: tables, figures, report, caching, Python API."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import build_tiny_llama, config_dict, floor_of, make_config

from layerdrift import open_run, run
from layerdrift.analyses.drift import cosine_drift
from layerdrift.workbench.config import config_from_dict


def tiny_run_config(out, model, other, vocab, **analysis):
    """Base, tuned and a bfloat16 floor of base, with 200 bootstrap and permutation draws."""
    variants = {"base": model, "tuned": other, "floor": floor_of(model)}
    return make_config(out, variants, vocab, analysis={"top_n": 5, "n_boot": 200, "n_perm": 200, **analysis})


def test_run_writes_report_and_tables_agree(tiny_model, tiny_model_b, vocab_file, tmp_path):
    result = run(tiny_run_config(tmp_path / "run", tiny_model, tiny_model_b, vocab_file, png=True), quiet=True)
    t = result.tables
    pairs = t["pairs"].set_index("pair")
    assert list(pairs.index) == ["base→tuned", "base→floor"] and bool(pairs.loc["base→floor", "floor"])
    # the headline number is the mean of the per-concept drift table at the final layer, and equals a direct computation
    store = result.store
    direct = cosine_drift(store.layer("base", "concepts", -1), store.layer("tuned", "concepts", -1))
    final = t["drift"][(t["drift"]["pair"] == "base→tuned") & (t["drift"]["label"] == "final")]
    np.testing.assert_allclose(final.sort_values("concept")["drift"], direct, atol=1e-12)
    assert abs(pairs.loc["base→tuned", "mean"] - direct.mean()) < 1e-12
    assert pairs.loc["base→floor", "mean"] < 0.01 * pairs.loc["base→tuned", "mean"], (
        "bf16 copy of the same weights sits far below a different model"
    )
    cats = t["categories"][t["categories"]["pair"] == "base→tuned"]
    assert abs(cats["share_vocabulary"].sum() - 100) < 1e-9 and abs(cats["share_top_quartile"].sum() - 100) < 1e-9
    top = t["top_drifters"][t["top_drifters"]["pair"] == "base→tuned"]
    assert top.iloc[0]["term"] == final.sort_values("drift").iloc[-1]["term"] and list(top["rank"]) == [1, 2, 3, 4, 5]
    layers = t["layers"][t["layers"]["pair"] == "base→tuned"]
    # every prompt ends in " is": at the embedding they share one vector, so nothing is measured there
    embed, rest = layers[layers["label"] == "embed"], layers[layers["label"] != "embed"]
    assert embed[["drift_mean", "jaccard_mean", "cka", "cka_debiased"]].isna().all(axis=None)
    assert any("at embed every prompt ends in the token ' is'" in n for n in result.notes), result.notes
    assert len(rest) == 4 and (rest["drift_ci_low"] <= rest["drift_mean"] + 1e-12).all()
    assert len(t["cka_cross"]) == 2 * 5 * 5 and set(t["effective_rank"]["variant"]) == {"base", "tuned", "floor"}
    report = tmp_path / "run/report"
    assert (
        (report / "index.html").is_file()
        and (report / "tables/pairs.csv").is_file()
        and (report / "tables/drift.parquet").is_file()
    )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        assert any("PNG figures were not rendered" in n for n in result.notes)
    for name in (
        "top_drifters_base_vs_tuned",
        "category_comparison",
        "category_violins",
        "drift_by_layer",
        "drift_by_layer_category_base_vs_tuned",
        "jaccard_by_layer",
        "cka_by_layer",
        "cka_cross_base_vs_tuned",
        "effective_rank",
        "umap_trajectories_base_vs_tuned",
        "umap_by_category",
    ):
        assert (report / f"figures/{name}.html").is_file(), name
        if chromium:
            assert (report / f"figures/{name}.png").stat().st_size > 5000, name
    html = (report / "index.html").read_text()
    assert "base→tuned" in html and result.store.manifest["config_hash"] in html
    # the Python API reads the same tables back, and builds the same figures
    again = open_run(tmp_path / "run")
    np.testing.assert_allclose(again.tables["pairs"]["mean"], t["pairs"]["mean"])
    assert set(again.figures) == set(result.figures)


def test_second_run_reuses_captures_and_analyses(tiny_model, tiny_model_b, vocab_file, tmp_path, monkeypatch):
    cfg = tiny_run_config(tmp_path / "run", tiny_model, tiny_model_b, vocab_file, png=False)
    run(cfg, quiet=True)
    from layerdrift.workbench.experiments import drift as analyze_module
    from layerdrift.workbench.store import extract as extraction

    monkeypatch.setattr(extraction, "load_variant", lambda *a, **k: pytest.fail("model reloaded"))
    monkeypatch.setattr(analyze_module, "analyze", lambda *a, **k: pytest.fail("analyses recomputed"))
    result = run(cfg, quiet=True)
    assert len(result.tables["pairs"]) == 2


def test_different_widths_refuse_drift_unless_aligned(tiny_model, vocab_file, tmp_path_factory):
    wide = build_tiny_llama(tmp_path_factory.mktemp("wide"), seed=2, hidden=48)
    cfg = config_dict(tmp_path_factory.mktemp("runw"), {"base": tiny_model, "wide": wide}, vocab_file, name="w")
    result = run(config_from_dict(cfg), quiet=True)
    assert any("32 and 48 dimensions" in n for n in result.notes)
    assert result.tables["pairs"].empty and result.tables["layers"]["cka"].notna().sum() >= 4
    assert result.tables["layers"]["jaccard_mean"].dropna().between(0, 1).all()  # NaN at the shared embedding
    cfg["analysis"]["align"] = "procrustes"
    aligned = run(config_from_dict(cfg), quiet=True)
    assert bool(aligned.tables["pairs"]["aligned"].iloc[0]) and 0 < aligned.tables["pairs"]["mean"].iloc[0] < 1


def test_open_run_without_analyses_is_a_clear_error(tiny_model, vocab_file, tmp_path):
    from conftest import tiny_config

    from layerdrift.errors import LayerdriftError
    from layerdrift.workbench.store.extract import extract

    extract(tiny_config(tiny_model, vocab_file, tmp_path / "run"), quiet=True)
    with pytest.raises(LayerdriftError, match="has no analysis results yet.*`layerdrift run`"):
        open_run(tmp_path / "run")


def test_findings_read_each_pair_against_the_floor(tiny_run):
    import html

    t = tiny_run.tables
    pairs = t["pairs"].set_index("pair")
    tuned, floor = pairs.loc["base→tuned"], pairs.loc["base→floor"]
    findings = tiny_run.findings()  # drift first (the registry's order): the pair's drift, then its categories
    assert findings[2].startswith("The behaviour vectors of base→tuned") and findings[-1].startswith("Steering tuned")
    times = tuned["mean"] / floor["mean"]
    assert findings[0] == (
        f"base→tuned drifts {tuned['mean']:.4g} [{tuned['ci_low']:.4g}, {tuned['ci_high']:.4g}] at final, "
        f"{times:.3g}x the noise floor base→floor ({floor['mean']:.4g}): above the floor."
    )
    cats = t["categories"][t["categories"]["pair"] == "base→tuned"]
    top = cats.loc[cats["mean"].idxmax()]
    assert findings[1].startswith(f"base→tuned moves {top['category']} concepts most ({top['mean']:.4g} vs ")
    assert findings[1].endswith(f": {top['verdict']}.") and "the noise floor base→floor" in findings[1]
    page = (tiny_run.store.root / "report/index.html").read_text(encoding="utf-8")
    assert f"<li>{html.escape(findings[1])}</li>" in page and "<svg onload" not in page
