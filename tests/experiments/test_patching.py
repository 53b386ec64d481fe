"""Activation patching: identities on tiny models, the normalised effect, flips, caching and data validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_tiny_llama, make_config

from layerdrift.analyses.patching import first_divergence, normalised_effect
from layerdrift.concepts.patch_prompts import BUILTIN_PATCH_SETS, load_patch_prompts
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.interventions import ALL_POSITIONS, clean_readout, component_hook, left_pad, patch_sweep
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.loading import free, load_variant

PROMPTS = [
    "The concept of love is",
    "France Paris electron",
    "The concept of justice",
    "nurse teenager photosynthesis is",
    "Paris is",
]


def capture_all_positions(loaded, seqs, hook):
    """Slow obvious capture: one prompt at a time, no padding."""
    out = []
    for s in seqs:
        store = {}

        def grab(act, hook=None):
            store["x"] = act[0].detach().clone()

        with loaded.bridge.hooks(fwd_hooks=[(hook, grab)]):
            loaded.bridge(torch.tensor([s]), return_type=None)
        out.append(store["x"].numpy())
    return out


@pytest.fixture(scope="module")
def tiny_pair(tiny_model, tiny_model_tuned):
    a = load_variant(VariantSpec(name="a", source=str(tiny_model)))
    b = load_variant(VariantSpec(name="b", source=str(tiny_model_tuned)))
    seqs = [a.tokenizer(p)["input_ids"] for p in PROMPTS]
    yield a, b, seqs
    free(a)
    free(b)


def test_patching_a_variant_into_itself_changes_nothing(tiny_pair):
    a, _, seqs = tiny_pair
    vocab = np.tile(np.arange(len(a.tokenizer)), (len(seqs), 1))
    hooks = [component_hook(c, l) for c in ("resid", "attn", "mlp") for l in range(a.n_layers)]
    sources = {h: capture_all_positions(a, seqs, h) for h in hooks}
    logits, lse, valid = patch_sweep(a.bridge, seqs, 0, hooks, sources, [-1, -2, ALL_POSITIONS], vocab, batch_size=4)
    clean, clean_lse = clean_readout(a.bridge, seqs, 0, vocab)
    assert valid.all()
    np.testing.assert_allclose(logits, np.broadcast_to(clean, logits.shape), atol=1e-5)
    np.testing.assert_allclose(lse, np.broadcast_to(clean_lse, lse.shape), atol=1e-5)


def test_last_block_at_every_position_reproduces_the_source_logits(tiny_pair):
    a, b, seqs = tiny_pair
    vocab = np.tile(np.arange(len(a.tokenizer)), (len(seqs), 1))
    last = component_hook("resid", a.n_layers - 1)
    first = component_hook("resid", 0)
    sources = {h: capture_all_positions(b, seqs, h) for h in (first, last)}
    logits, _, _ = patch_sweep(a.bridge, seqs, 0, [first, last], sources, [-2, ALL_POSITIONS], vocab, batch_size=3)
    clean_a, _ = clean_readout(a.bridge, seqs, 0, vocab)
    clean_b, _ = clean_readout(b.bridge, seqs, 0, vocab)
    assert np.abs(clean_a - clean_b).max() > 0.1  # the two models really differ
    np.testing.assert_allclose(logits[1, 1], clean_b, atol=1e-4)  # last block, all positions -> B
    np.testing.assert_allclose(
        logits[1, 0], clean_a, atol=1e-4
    )  # last block, an earlier token only -> no effect on the next token
    assert np.abs(logits[0, 1] - clean_b).max() > 1e-3  # an early block is not enough: later blocks are still A's


def test_left_padding_is_invisible(tiny_pair):
    a, _, seqs = tiny_pair
    vocab = np.tile(np.arange(len(a.tokenizer)), (len(seqs), 1))
    batched, _ = clean_readout(a.bridge, seqs, 0, vocab, batch_size=8)
    single = np.stack([clean_readout(a.bridge, [s], 0, vocab[:1])[0][0] for s in seqs])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    ids, mask = left_pad([[5, 6], [7]], 0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]


def test_normalised_effect_known_cases():
    r, s = np.array([0.0, 1.0, 2.0]), np.array([2.0, 3.0, 4.0])
    assert normalised_effect(r, r, s) == 0.0
    assert normalised_effect(s, r, s) == 1.0
    assert normalised_effect((r + s) / 2, r, s) == pytest.approx(0.5)
    stacked = normalised_effect(np.stack([r, s]), r, s)
    np.testing.assert_allclose(stacked, [0.0, 1.0])
    assert np.isnan(normalised_effect(r, r, r))  # no gap: undefined, not infinite
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2 and first_divergence([1, 2], [1, 2, 3]) is None


def simulated_patching(rng, theta, n=40, ties=0):
    """Clean receiver and source logit differences 1-4 nats apart; patching moves a prompt theta of the way (plus
    noise). ``ties`` extra prompts are near-ties (gap 0.05) whose patched value is wild."""
    receiver = rng.normal(0, 2, n)
    source = receiver + rng.uniform(1, 4, n)
    patched = receiver + theta * (source - receiver) + rng.normal(0, 0.5, n)
    tie_r = rng.normal(0, 2, ties)
    return (
        np.concatenate([patched, tie_r + rng.normal(0, 3, ties)]),
        np.concatenate([receiver, tie_r]),
        np.concatenate([source, tie_r + 0.05]),
    )


def test_patching_ci_covers_the_true_effect_and_near_ties_are_left_out():
    from layerdrift.analyses.patching import near_ties, normalised_effect_ci

    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        patched, receiver, source = simulated_patching(rng, theta=0.6)
        low, high = normalised_effect_ci(patched, receiver, source, n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += bool(low <= 0.6 <= high)
    assert 0.88 <= covered / 200 <= 0.99  # a 95% interval, up to bootstrap and sampling error
    # the same resamples for every cell: a stacked (blocks, n) array gives each row's own interval
    rows = np.stack([receiver, source])
    low, high = normalised_effect_ci(rows, receiver, source, n_boot=200)
    np.testing.assert_allclose([low[0], high[0], low[1], high[1]], [0, 0, 1, 1], atol=1e-12)
    # near-ties with wild patched values: kept, they pull the effect; left out, it is the planted one
    patched, receiver, source = simulated_patching(np.random.default_rng(1), theta=0.6, n=30, ties=10)
    ties = near_ties(receiver, source, min_gap=1.0)
    assert ties.sum() == 10 and not ties[:30].any()
    kept = np.where(ties, np.nan, receiver), np.where(ties, np.nan, source)
    assert abs(normalised_effect(patched, *kept) - 0.6) < 0.1
    assert abs(normalised_effect(patched, receiver, source) - normalised_effect(patched, *kept)) > 0.01


def patch_config(tmp_path, base, other, prompts, **patching):
    """Base patched into other and back, two positions, batches of 7."""
    return make_config(
        tmp_path / "run",
        {"base": base, "other": other},
        prompts.parent / "vocab.tsv",
        name="patch",
        capture={},
        patching={"prompts": str(prompts), "positions": 2, "batch_size": 7, **patching},
    )


@pytest.fixture()
def patch_files(tmp_path, vocab_file):
    (tmp_path / "vocab.tsv").write_text(vocab_file.read_text())
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "target": " is", "category": "c"}) + "\n" for p in PROMPTS))
    return path


def test_pipeline_self_patch_is_zero_and_last_layer_is_one(
    tiny_model, tiny_model_tuned, patch_files, tmp_path, monkeypatch
):
    from layerdrift import run

    same = run(patch_config(tmp_path / "same", tiny_model, tiny_model, patch_files, select="all"), quiet=True).tables[
        "patching"
    ]
    assert len(same) == 2 * 3 * 3  # two directions x three blocks x (two positions + all)
    np.testing.assert_allclose(same["delta_logprob"], 0.0, atol=1e-5)
    np.testing.assert_allclose(same["delta_logit_diff"], 0.0, atol=1e-5)

    def tuned(min_gap):
        config = dict(select="flips", components=["resid", "mlp"], min_gap=min_gap)
        return run(patch_config(tmp_path / "tuned", tiny_model, tiny_model_tuned, patch_files, **config), quiet=True)

    result = tuned(0.0)  # the tiny models' gaps are below a nat: keep every prompt here
    table, prompts = result.tables["patching"], result.tables["patching_prompts"]
    assert prompts["flip"].all() and len(prompts) >= 1
    assert (prompts["id_a"] != prompts["id_b"]).all()  # the two variants part at these tokens
    assert set(table["direction"]) == {"other into base", "base into other"}
    np.testing.assert_allclose(prompts["gap_logit_diff"], prompts["logit_diff_b"] - prompts["logit_diff_a"])
    assert not prompts["near_tie_logit_diff"].any() and (table["near_ties_logit_diff"] == 0).all()
    last = table[(table.block == 2) & (table.component == "resid")]
    np.testing.assert_allclose(last.query("position == 'all'")["normalised_logit_diff"], 1.0, atol=1e-5)
    np.testing.assert_allclose(last.query("position == '-2'")["normalised_logit_diff"], 0.0, atol=1e-5)
    ci = last[["normalised_logit_diff_ci_low", "normalised_logit_diff_ci_high"]].to_numpy()
    np.testing.assert_allclose(ci[last["position"].to_numpy() == "all"], 1.0, atol=1e-5)  # exact for every resample
    # A second run reuses everything: no model is loaded again, also to read the sweeps with another near-tie gap.
    import layerdrift.workbench.models.loading as variants

    monkeypatch.setattr(variants, "load_variant", lambda *a, **k: pytest.fail("a cached patching run loaded a model"))
    assert tuned(0.0).tables["patching"].equals(table)
    gaps = tuned(1.0).tables["patching_prompts"]["gap_logit_diff"].abs()
    again = tuned(1.0).tables["patching"]
    assert (again["near_ties_logit_diff"] == int((gaps < 1.0).sum())).all()
    if (gaps < 1.0).all():
        assert again["normalised_logit_diff"].isna().all()  # nothing left to normalise by: NaN, never a number


def test_patch_prompt_files_are_validated(tmp_path):
    assert "flip-probes" in BUILTIN_PATCH_SETS
    _source, rows = load_patch_prompts("flip-probes")
    assert len(rows) == 170 and {r.category for r in rows} == {"addition", "multiplication", "capital", "opposite"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "target": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(LayerdriftError, match=r"line 2 lacks a non-empty str field 'target'"):
        load_patch_prompts(bad)
    bad.write_text('{"prompt": "a", "target": "b"\n')
    with pytest.raises(LayerdriftError, match="line 1 is not valid JSON"):
        load_patch_prompts(bad)
    with pytest.raises(LayerdriftError, match="neither a built-in"):
        load_patch_prompts(tmp_path / "missing.jsonl")


def test_patching_refuses_different_tokenizers(tiny_model, patch_files, tmp_path, vocab_file):
    from layerdrift import run

    other = tmp_path / "other-tok"
    other.mkdir()
    build_tiny_llama(other)
    tok = json.loads((other / "tokenizer.json").read_text())
    tok["model"]["vocab"]["zzz-extra"] = len(tok["model"]["vocab"]) + 50
    (other / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(LayerdriftError, match="one tokenizer"):
        run(patch_config(tmp_path, tiny_model, other, patch_files), quiet=True)


def test_patching_finding_needs_the_whole_ci_above_one_half():
    """Block 1 reaches 0.6 but its CI dips to 0.3; block 2's CI is [0.55, 0.9]: the finding names block 2."""
    from layerdrift.workbench.experiments.patching import direction_finding

    table = pd.DataFrame(
        {
            "position": ["all"] * 3 + ["-1"],
            "block": [0, 1, 2, 2],
            "normalised_logit_diff": [0.1, 0.6, 0.7, 0.9],
            "normalised_logit_diff_ci_low": [-0.2, 0.3, 0.55, 0.8],
            "normalised_logit_diff_ci_high": [0.4, 0.9, 0.9, 1.0],
            "near_ties_logit_diff": [3, 3, 3, 3],
        }
    )
    text = direction_finding("nf4 into reference", "resid", table)
    assert text == (
        "Patching nf4 into reference (resid, all tokens) first recovers at least half the behaviour with its whole "
        "95% CI: 0.70 [0.55, 0.90] at block 2 (3 near-ties left out)."
    )
    unsure = direction_finding("nf4 into reference", "resid", table.assign(normalised_logit_diff_ci_low=0.2))
    assert "at no block with its whole 95% CI; the largest is 0.70 [0.20, 0.90] at block 2" in unsure


def test_the_patching_effect_is_located_along_depth_and_joins_the_localisation_table(tiny_run):
    """Onset (first block whose effect at every position exceeds zero), break (the block after the largest rise) and
    final value, read from the effect table itself; the residual stream's rows join the lens's localisation table."""
    t = tiny_run.tables
    located, effects = t["patching_localisation"], t["patching"]
    assert len(located) == effects.groupby(["direction", "component"]).ngroups
    for _, r in located.iterrows():
        curve = effects[
            (effects.direction == r.direction) & (effects.component == r.component) & (effects.position == "all")
        ].sort_values("block")
        e, blocks = curve["normalised_logit_diff"].to_numpy(), curve["block"].to_numpy()
        above = np.flatnonzero(e > 0)
        assert r["onset"] == blocks[above[0]] if len(above) else np.isnan(r["onset"])
        rises = np.diff(e)
        assert r["break"] == blocks[np.nanargmax(rises) + 1] if np.nanmax(rises) > 0 else np.isnan(r["break"])
        assert r["final"] == pytest.approx(e[-1], nan_ok=True)
        if not np.isnan(r["onset"]):
            assert r["onset_low"] <= r["onset"] <= r["onset_high"]
    rows = tiny_run.tables["localisation"].query("curve == 'patching'")
    resid = located[located.component == "resid"]
    assert len(rows) == len(resid) and set(rows["against"]) == {"zero"}
    labels = tiny_run.meta_of("lens")["labels"]
    for (_, row), (_, r) in zip(rows.iterrows(), resid.iterrows()):
        assert row["measure"] == f"patching effect ({r['direction']})" and row["pair"] in set(t["output_pairs"]["pair"])
        assert row["onset_label"] == (str(int(r["onset"])) if not np.isnan(r["onset"]) else None)
        assert np.isnan(row["onset"]) or labels[int(row["onset"])] == row["onset_label"]
