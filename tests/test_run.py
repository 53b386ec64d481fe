"""`layerdrift run` end to end on tiny models: tables, figures, report, caching, Python API."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import build_tiny_llama, config_dict, feature_cka, floor_of, make_config

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


def test_other_depth_and_width_are_compared_at_matched_relative_depth(tiny_model, vocab_file, tmp_path_factory):
    """A 3-block d=32 model against a 2-block d=48 one: rows at the shallow model's points, each matched by
    relative depth, with CKA, Jaccard and Procrustes drift equal to direct computations on those points."""
    from layerdrift.analyses.drift import procrustes_align
    from layerdrift.analyses.neighbours import knn_jaccard

    shallow = build_tiny_llama(tmp_path_factory.mktemp("shallow-wide"), seed=3, hidden=48, layers=2)
    out = tmp_path_factory.mktemp("run-depths")
    cfg = config_dict(out, {"deep": tiny_model, "shallow": shallow}, vocab_file, analysis={"align": "procrustes"})
    result = run(config_from_dict(cfg), quiet=True)
    layers = result.tables["layers"]
    matched = list(zip(layers["layer"], layers["label_a"], layers["label_b"]))
    # embedding to embedding, block 1 of 2 to block 2 of 3 (1.5 rounded up: label "1"), block 2 to 3, final to final
    assert matched == [(0, "embed", "embed"), (2, "1", "0"), (3, "2", "1"), (4, "final", "final")]
    assert layers["aligned"].all() and any("compared at the 4 points of the shallower one" in n for n in result.notes)
    store, k = result.store, result.meta["spec"]["k"]
    for row in layers.itertuples():
        if row.label == "embed":  # every tiny prompt ends in " is": degenerate, NaN with a reason
            assert np.isnan(row.cka) and np.isnan(row.drift_mean) and np.isnan(row.jaccard_mean)
            continue
        a = store.activations("deep", "concepts", store.residual_points("deep", "concepts")[row.layer], "last")
        j = ["embed", "0", "1", "final"].index(row.label_b)
        b = store.activations("shallow", "concepts", store.residual_points("shallow", "concepts")[j], "last")
        a, b = a.astype(np.float64), b.astype(np.float64)
        assert row.cka == pytest.approx(feature_cka(a, b), abs=1e-9)
        assert row.jaccard_mean == pytest.approx(knn_jaccard(a, b, k).mean(), abs=1e-12)
        assert row.drift_mean == pytest.approx(cosine_drift(procrustes_align(a, b), b).mean(), abs=1e-12)
    assert result.tables["pairs"]["layer"].tolist() == [4] and result.meta["no_maps"].startswith("joint maps need")
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "<tbody>\n  </tbody>" not in page, "no section heading over an empty table"


def test_an_alignment_with_nothing_to_align_is_refused(tiny_model, tiny_model_b, vocab_file, tmp_path):
    from layerdrift.errors import LayerdriftError

    cfg = make_config(
        tmp_path / "run", {"a": tiny_model, "b": tiny_model_b}, vocab_file, analysis={"align": "procrustes"}
    )
    with pytest.raises(
        LayerdriftError, match="every variant of this run has 32 dimensions, so there is nothing to align"
    ):
        run(cfg, quiet=True)


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
    findings = tiny_run.findings()  # in the registry's order: drift (the pair, its categories), templates, ...
    assert findings[2].startswith("Over 2 templates, base→tuned drifts ") and "of 2 templates" in findings[2]
    assert findings[3].startswith("base→tuned moves ") and "of 2 templates" in findings[3]
    heads = [f.split(" (")[0].split(" toward")[0].split(" changes the")[0].split(" have")[0] for f in findings[4:-2]]
    assert heads == [  # then patching per direction and component, behaviour, steering, manifold per probed variant
        "Patching tuned into base",
        "Patching tuned into base",
        "Patching base into tuned",
        "Patching base into tuned",
        "The behaviour vectors of base→tuned",
        "Steering base",
        "Steering tuned",
        "tuned",
        "floor",
    ]
    lens = findings[-2:]  # then the lens: next-token drift, and where the pair exceeds the floor
    assert lens[0].startswith("base→tuned: next-token JS ") and "above the floor" in lens[0]
    assert lens[1].startswith("base→tuned exceeds the noise floor: cosine drift from ")
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
