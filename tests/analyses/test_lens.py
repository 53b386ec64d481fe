"""The logit lens and the divergences, against the models' own logits and slow obvious references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as scipy_entropy

from layerdrift.analyses.lens import (
    LensHead,
    compare_outputs,
    entropy,
    js,
    kl,
    rank_of,
    read_out,
)
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.models.heads import read_lens_head


def tiny_causal_lm(arch: str) -> torch.nn.Module:
    """A randomly initialised tiny model of each norm kind, its norm weights moved off their defaults."""
    import transformers as tf

    torch.manual_seed(0)
    common = {"vocab_size": 97, "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2}
    if arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**common, intermediate_size=64, num_key_value_heads=2))
    elif arch == "gemma3":
        config = tf.Gemma3TextConfig(
            **common, intermediate_size=64, num_key_value_heads=2, head_dim=8, final_logit_softcapping=30.0
        )
        model = tf.Gemma3ForCausalLM(config)
    else:
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=97, n_embd=32, n_head=4, n_layer=2))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_" in name:
                param.add_(0.3 * torch.randn_like(param))
    return model.eval()


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2"])
def test_the_lens_at_the_final_point_is_the_models_own_logits(arch):
    """Read through the head taken from the model, the last block's output and the final norm's output both give
    the model's logits (1e-5): norm kind, eps, Gemma's (1 + w), GPT-2's bias, soft-capping all read right."""
    model = tiny_causal_lm(arch)
    head = read_lens_head(model, arch)
    norm = model.transformer.ln_f if arch == "gpt2" else model.model.norm
    seen = {}
    hook = norm.register_forward_hook(lambda m, args, out: seen.update(x=args[0], normed=out))
    ids = torch.randint(0, 97, (3, 7))
    with torch.no_grad():
        logits = model(ids).logits.reshape(-1, 97)
    hook.remove()
    x, normed = seen["x"].reshape(-1, 32), seen["normed"].reshape(-1, 32)
    assert head.softcap == (30.0 if arch == "gemma3" else None)
    torch.testing.assert_close(head.logits(x), logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(head.logits(normed, normalised=True), logits, atol=1e-5, rtol=1e-5)


def test_a_head_that_cannot_be_read_is_refused_in_one_sentence():
    model = tiny_causal_lm("llama")
    model.model.norm = torch.nn.Identity()
    with pytest.raises(LayerdriftError, match=r"cannot read variant 'odd': it has a final norm of a kind .*Identity"):
        read_lens_head(model, "odd")


def random_log_probs(rows: int, vocab: int, seed: int, sharp: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharp * torch.randn(rows, vocab, generator=g, dtype=torch.float64), dim=-1)


def test_divergences_agree_with_scipy_and_js_is_symmetric_and_bounded():
    logp, logq = random_log_probs(6, 50, 1), random_log_probs(6, 50, 2, sharp=8.0)
    p, q = logp.exp().numpy(), logq.exp().numpy()
    np.testing.assert_allclose(entropy(logp).numpy(), [scipy_entropy(r) for r in p], rtol=1e-10)
    np.testing.assert_allclose(kl(logp, logq).numpy(), [scipy_entropy(a, b) for a, b in zip(p, q)], rtol=1e-10)
    slow = [jensenshannon(a, b) ** 2 for a, b in zip(p, q)]  # scipy gives the square root, in nats
    np.testing.assert_allclose(js(logp, logq).numpy(), slow, rtol=1e-9)
    np.testing.assert_allclose(js(logp, logq).numpy(), js(logq, logp).numpy(), rtol=1e-12)
    assert (js(logp, logq) >= 0).all() and (js(logp, logq) <= math.log(2)).all()
    one_hot = torch.log(torch.eye(4, dtype=torch.float64))  # disjoint supports: JS reaches ln 2, with zeros in p
    np.testing.assert_allclose(js(one_hot, one_hot.roll(1, dims=1)).numpy(), math.log(2), rtol=1e-12)
    assert torch.isfinite(entropy(one_hot)).all() and (entropy(one_hot) == 0).all()


def test_rank_of_is_the_position_in_a_sorted_row():
    logq = random_log_probs(5, 30, 3)
    tokens = torch.tensor([0, 7, 29, 3, 12])
    slow = [int(np.where(np.argsort(-row.numpy(), kind="stable") == t)[0][0]) for row, t in zip(logq, tokens)]
    assert rank_of(logq, tokens).tolist() == slow
    assert (rank_of(logq, logq.argmax(-1)) == 0).all()


def random_head(vocab: int = 40, d: int = 8, seed: int = 0) -> LensHead:
    g = torch.Generator().manual_seed(seed)
    return LensHead(torch.randn(vocab, d, generator=g), 1 + 0.1 * torch.randn(d, generator=g), "rms", 1e-6)


def test_own_lens_streams_to_the_same_numbers_and_reads_the_final_point_as_final():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(4, 9, 8)).astype(np.float32)
    head = random_head()
    normalised = [False, False, False, True]
    xs[-1] = head.normalise(torch.as_tensor(xs[-2])).numpy()  # the final point: the last block's output, normed
    whole = read_out({"v": head}, {"v": xs}, {"v": normalised}, k=3).own["v"]
    rowwise = read_out({"v": head}, {"v": xs}, {"v": normalised}, k=3, block=1).own["v"]
    np.testing.assert_array_equal(whole.top_ids, rowwise.top_ids)
    for name in ("entropy", "kl_to_final", "top_probs"):  # float32 logits: a block's shape moves the last bits
        np.testing.assert_allclose(getattr(whole, name), getattr(rowwise, name), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(whole.kl_to_final[-2:], 0.0, atol=1e-6)  # last block and final read the same
    logp = head.log_probs(torch.as_tensor(xs[1]), dtype=torch.float64)
    np.testing.assert_allclose(whole.entropy[1], entropy(logp).numpy(), rtol=1e-6)  # float32 read-outs
    assert (whole.top_ids[1, :, 0] == logp.argmax(-1).numpy()).all()
    assert (np.diff(whole.top_probs, axis=-1) <= 0).all()


def slow_js(head_a, xa, head_b, xb):
    """JS between two read-outs at every point, one point and one distribution at a time, in float64."""
    return np.stack(
        [
            js(
                head_a.log_probs(torch.as_tensor(a), dtype=torch.float64),
                head_b.log_probs(torch.as_tensor(b), dtype=torch.float64),
            ).numpy()
            for a, b in zip(xa, xb)
        ]
    )


def test_identical_variants_give_js_zero_and_full_top1_agreement_at_every_point():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(3, 11, 8)).astype(np.float32)
    head = random_head(seed=0)
    nudged = xs + 0.5 * rng.normal(size=xs.shape).astype(np.float32)
    variants = {"a": xs, "same": xs.copy(), "moved": nudged}
    pairs = [("a", "same"), ("a", "moved")]
    normalised = {v: [False] * 3 for v in variants}
    out = read_out(dict.fromkeys(variants, head), variants, normalised, head, pairs, block=4)
    np.testing.assert_array_equal(out.common[("a", "same")], 0.0)
    assert (out.common[("a", "moved")] > 0).all()
    last = {v: x[-1] for v, x in variants.items()}
    same = compare_outputs(dict.fromkeys(variants, head), last, dict.fromkeys(variants, False), pairs, block=4)
    np.testing.assert_array_equal(same[("a", "same")]["js"], 0.0)
    np.testing.assert_array_equal(same[("a", "same")]["top1_agree"], 1.0)
    np.testing.assert_array_equal(same[("a", "same")]["rank_of_top"], 0.0)


def test_next_token_comparisons_read_each_variant_through_its_own_head():
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(2, 9, 8)).astype(np.float32)
    ha, hb = random_head(seed=0), random_head(seed=1)
    out = compare_outputs(
        {"a": ha, "b": hb}, {"a": xa, "b": xb}, {"a": False, "b": False}, [("a", "b"), ("b", "a")], block=2
    )
    # float32 logits: a block's shape moves their last bits
    np.testing.assert_allclose(out[("a", "b")]["js"], slow_js(ha, xa[None], hb, xb[None])[0], rtol=1e-6)
    np.testing.assert_allclose(out[("a", "b")]["js"], out[("b", "a")]["js"], rtol=1e-12)
    pa, pb = (h.log_probs(torch.as_tensor(x), dtype=torch.float64) for h, x in ((ha, xa), (hb, xb)))
    np.testing.assert_allclose(out[("a", "b")]["kl"], kl(pa, pb).numpy(), rtol=1e-6)
    assert out[("a", "b")]["top1_agree"].tolist() == (pa.argmax(-1) == pb.argmax(-1)).double().tolist()


def test_the_common_read_out_is_each_pairs_js_through_the_common_head_computed_once_per_variant():
    """Through one shared head a pair's JS equals the pairwise float64 reference (1e-6 nats); a variant whose own
    head is the common one reads the same as the pairwise path, and its own lens is unchanged by the pairs."""
    rng = np.random.default_rng(2)
    xs = {v: rng.normal(size=(3, 7, 8)).astype(np.float32) for v in ("a", "b", "c")}
    common, other = random_head(seed=0), random_head(seed=3)
    heads = {"a": common, "b": common, "c": other}
    normalised = {v: [False] * 3 for v in xs}
    pairs = [("a", "b"), ("a", "c"), ("b", "c")]
    out = read_out(heads, xs, normalised, common, pairs, k=2, block=3)
    for a, b in pairs:
        slow = slow_js(common, xs[a], common, xs[b])
        np.testing.assert_allclose(out.common[(a, b)], slow, rtol=1e-4, atol=1e-7)
    alone = read_out({"c": other}, {"c": xs["c"]}, {"c": normalised["c"]}, k=2).own["c"]
    np.testing.assert_array_equal(out.own["c"].top_ids, alone.top_ids)
    np.testing.assert_allclose(out.own["c"].entropy, alone.entropy, rtol=1e-6)


def test_js_stays_finite_where_one_distribution_outweighs_the_other_beyond_float32s_range():
    logp = torch.tensor([[0.0, -95.0, 0.0]]).log_softmax(-1)  # p's second token: e^-95, not zero in float32
    logq = torch.zeros(1, 3).log_softmax(-1)  # q puts a third there: e^94.6 times p, past float32's range
    got = js(logp, logq)
    assert torch.isfinite(got).all() and got.item() > 0.05
    np.testing.assert_allclose(got.numpy(), js(logp.double(), logq.double()).numpy(), rtol=1e-5)  # float32
