"""The lens experiment on tiny models: read-outs against the models' own logits, identical variants, a change planted
in one block located there, another tokenizer, and heads kept in the run folder."""

import itertools
import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import VOCAB_TEXT, derive_tiny_llama, floor_of, make_config

PLANTED_BLOCK = 1


@pytest.fixture(scope="module")
def lens_models(tiny_model, tmp_path_factory):
    """The tiny model with block 1 alone changed, and a copy of it whose tokenizer has one token more."""
    from transformers import AutoTokenizer

    def edit(model):
        gen = torch.Generator().manual_seed(3)
        for p in model.model.layers[PLANTED_BLOCK].parameters():
            p.add_(0.5 * p.std() * torch.randn(p.shape, generator=gen))

    planted = derive_tiny_llama(tiny_model, tmp_path_factory.mktemp("planted-block"), edit)
    other = tmp_path_factory.mktemp("other-tokenizer")
    shutil.copytree(tiny_model, other, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    tok.save_pretrained(other)
    return planted, other


@pytest.fixture(scope="module")
def lens_run(tiny_model, lens_models, tmp_path_factory):
    from layerdrift import run

    planted, other = lens_models
    folder = tmp_path_factory.mktemp("lens-run")
    (folder / "vocab.tsv").write_text(VOCAB_TEXT, encoding="utf-8")
    variants = {
        "base": tiny_model,
        "block1": planted,
        "copy": tiny_model,
        "other": other,
        "floor": floor_of(tiny_model),
    }
    config = make_config(
        folder / "run", variants, folder / "vocab.tsv", lens={"top_k": 3}, analysis={"umap_layers": []}
    )
    return run(config, quiet=True), config


def test_the_lens_at_the_final_point_is_the_models_own_next_token_distribution(lens_run, tiny_model):
    from transformers import AutoModelForCausalLM

    result, _ = lens_run
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tokens = result.store.tokenization("base", "concepts")
    own = result.tables["lens_own"].query("variant == 'base' and label == 'final'").sort_values("concept")
    top = result.tables["lens_top"].query("variant == 'base' and label == 'final'")
    for i, (ids, (last,)) in enumerate(zip(tokens["ids"], tokens["positions"]["last"])):
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, last].double(), -1)
        row = own.iloc[i]
        assert row["entropy"] == pytest.approx(float(-(logp.exp() * logp).sum()), abs=1e-5)
        assert row["kl_to_final"] == pytest.approx(0.0, abs=1e-12)
        want = torch.topk(logp, 3)
        got = top[top["concept"] == i].sort_values("rank")
        assert got["token_id"].tolist() == want.indices.tolist()
        np.testing.assert_allclose(got["prob"], want.values.exp().numpy(), rtol=1e-4)


def test_identical_variants_read_the_same_at_every_layer(lens_run):
    result, _ = lens_run
    common = result.tables["lens_common"].query("pair == 'base→copy'")
    assert len(common) and (common["js"] == 0).all()
    out = result.tables["output_drift"].query("pair == 'base→copy'")
    assert (out["js"] == 0).all() and (out["top1_agree"] == 1).all() and (out["rank_of_top"] == 0).all()
    own = result.tables["lens_own"]
    a, b = (own[own["variant"] == v].drop(columns="variant").reset_index(drop=True) for v in ("base", "copy"))
    assert a.equals(b)


def test_a_change_planted_in_one_block_is_localised_at_that_block(lens_run):
    result, _ = lens_run
    loc = result.tables["localisation"].query("pair == 'base→block1'").set_index("curve")
    assert set(loc.index) == {"drift", "jaccard", "cka", "lens_js"}
    assert (loc["against"] == "base→floor").all()
    assert (loc.loc[["drift", "cka", "lens_js"], "onset_label"] == str(PLANTED_BLOCK)).all()
    common = result.tables["lens_layers"].query("pair == 'base→block1'").set_index("label")["js"]
    assert (common[["embed", "0"]] == 0).all() and common[str(PLANTED_BLOCK)] > 0
    pairs = result.tables["output_pairs"].set_index("pair")
    assert pairs.loc["base→block1", "js_ci_low"] > pairs.loc["base→floor", "js_ci_high"]
    onsets = result.tables["concept_onsets"].query("pair == 'base→block1' and curve == 'drift'")
    assert (onsets["onset_label"] == str(PLANTED_BLOCK)).mean() > 0.5
    assert any("block1" in f and f"block {PLANTED_BLOCK}" in f for f in result.findings())


def test_a_variant_with_another_tokenizer_gets_its_own_lens_and_a_note(lens_run):
    result, _ = lens_run
    assert "other" in set(result.tables["lens_own"]["variant"])
    compared = set(result.tables["output_pairs"]["pair"]) | set(result.tables["lens_common"]["pair"])
    assert not any("other" in p for p in compared)
    notes = result.meta_of("lens")["notes"]
    assert any(n.startswith("other: its tokenizer is not the reference's") for n in notes)
    assert notes[0] in result.findings()


def test_heads_are_kept_at_capture_and_a_damaged_one_is_read_again(lens_run, monkeypatch):
    from layerdrift import run
    from layerdrift.workbench.experiments import lens

    result, config = lens_run
    before = result.tables["output_pairs"].copy()
    heads = result.store.root / "heads"
    record = json.loads((heads / "block1.json").read_text())
    assert record["sha256"] == json.loads((heads / "base.json").read_text())["sha256"]  # blocks only: one head
    calls = []
    real = lens.load_hf_model
    monkeypatch.setattr(lens, "load_hf_model", lambda spec, *a: calls.append(spec.name) or real(spec, *a))
    again = run(config.model_copy(update={"lens": config.lens.model_copy(update={"top_k": 2})}), quiet=True)
    assert calls == [] and again.tables["lens_top"]["rank"].max() == 2
    weights = heads / f"{json.loads((heads / 'floor.json').read_text())['sha256']}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # the last weight becomes inf: same size, another hash
    weights.write_bytes(bytes(data))
    third = run(config, quiet=True)
    assert calls == ["floor"]
    assert third.tables["output_pairs"].equals(before)


def test_next_token_velocity_along_a_series_against_the_checkpoints_own_logits(series_run):
    """The behavioural velocity is the JS between consecutive checkpoints' next-token distributions, computed here
    from each checkpoint's own forward pass; its representational partner is the trajectory's drift between them."""
    from scipy.spatial.distance import jensenshannon
    from transformers import AutoModelForCausalLM

    from layerdrift.training.finetune import series_checkpoints

    t = series_run.tables
    vel, lag = t["behaviour_velocity"], t["velocity_lag"].iloc[0]
    assert vel["step_from"].tolist() == [0, 1, 2] and vel["step_to"].tolist() == [1, 2, 4]
    tokens = series_run.store.tokenization("base", "concepts")
    probs = []
    for _, folder in series_checkpoints(series_run.store.root.parent / "ft"):
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        with torch.no_grad():
            probs.append(
                [
                    torch.softmax(model(torch.tensor([ids])).logits[0, last].double(), -1).numpy()
                    for ids, (last,) in zip(tokens["ids"], tokens["positions"]["last"])
                ]
            )
    slow = [np.mean([jensenshannon(p, q) ** 2 for p, q in zip(a, b)]) for a, b in itertools.pairwise(probs)]
    np.testing.assert_allclose(vel["js"], slow, rtol=1e-3, atol=1e-9)
    assert (vel["js"] > 0).all() and vel["js_ci_low"].lt(vel["js"]).all() and vel["js"].lt(vel["js_ci_high"]).all()
    traj = t["trajectory"].query("series == 'memo' and checkpoint > 0")
    np.testing.assert_allclose(vel["drift"], traj.groupby("checkpoint")["drift_prev"].mean(), rtol=1e-5, atol=1e-9)
    assert lag["c"] == pytest.approx(vel["js"].iloc[0] / vel["js"].sum())  # one interval in the first third of three
    assert 0 < lag["p"] <= 1 and 0 < lag["lag_p"] <= 1 and abs(lag["lag"]) <= 2 and lag["lag_n"] == len(tokens["ids"])
    assert lag["peak_behaviour"] == "{step_from}→{step_to}".format(**vel.loc[vel["js"].idxmax()])
    assert lag["intervals_above_floor"] == (vel["js_ci_low"] > vel["floor"]).sum()
    assert any(f.startswith("Series memo: next-token (JS) velocity") for f in series_run.findings())
