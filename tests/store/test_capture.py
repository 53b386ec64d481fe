"""Captured activations equal a plain Hugging Face forward (output_hidden_states=True), prompt by prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from layerdrift.errors import LayerdriftError
from layerdrift.workbench.store.extract import extract


def hf_states(model_dir, texts):
    """Per prompt, unpadded: hidden_states (L+2 points: embed, blocks..., final norm) as numpy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    out = []
    for text in texts:
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            hs = model(ids, output_hidden_states=True).hidden_states
        # HF's last entry is already normalised; the block-L output is captured by a hook on the last layer.
        block_outs = []
        handle = model.model.layers[-1].register_forward_hook(
            lambda m, i, o: block_outs.append(o[0] if isinstance(o, tuple) else o)
        )
        with torch.no_grad():
            model(ids)
        handle.remove()
        points = [h[0].numpy() for h in hs[:-1]] + [block_outs[0][0].numpy(), hs[-1][0].numpy()]
        out.append(np.stack(points))  # (L+2, t, d)
    return out, tok


@pytest.mark.parametrize("side", ["right", "left"])
def test_capture_equals_hf_forward(tiny_model, vocab_file, tmp_path, side):
    cfg = tiny_config(
        tiny_model,
        vocab_file,
        tmp_path / "run",
        positions=["last", "all", "match:{term}", "index:0"],
        padding_side=side,
    )
    store = extract(cfg, quiet=True)
    texts = store.tokenization("ref", "concepts")["texts"]
    ref, _tok = hf_states(tiny_model, texts)
    lengths = [r.shape[1] for r in ref]
    assert len(set(lengths)) > 1, "the batch must mix prompt lengths"
    points = store.residual_points("ref", "concepts")
    assert points[0] == "hook_embed" and points[-1] == "ln_final.hook_out" and len(points) == 3 + 2
    toks = store.tokenization("ref", "concepts")
    for layer, hook in enumerate(points):
        last = store.activations("ref", "concepts", hook, "last")
        every = store.activations("ref", "concepts", hook, "all")
        term = store.activations("ref", "concepts", hook, "match:{term}")
        first = store.activations("ref", "concepts", hook, "index:0")
        assert last.shape == (10, 32) and every.shape == (10, max(lengths), 32)
        for i, r in enumerate(ref):
            np.testing.assert_allclose(last[i], r[layer, -1], atol=1e-5)
            np.testing.assert_allclose(first[i], r[layer, 0], atol=1e-5)
            np.testing.assert_allclose(every[i, : lengths[i]], r[layer], atol=1e-5)
            assert not every[i, lengths[i] :].any(), "padding slots must stay zero"
            np.testing.assert_allclose(term[i], r[layer, toks["positions"]["match:{term}"][i][0]], atol=1e-5)
    # the last point is the final norm's output = HF's last hidden state; it differs from the block output
    assert not np.allclose(store.layer("ref", "concepts", -1), store.layer("ref", "concepts", -2), atol=1e-3)
    # a point by label or hook name is the same array as by index (a label used to raise a raw TypeError)
    assert np.array_equal(store.layer("ref", "concepts", "final"), store.layer("ref", "concepts", -1))
    assert np.array_equal(store.layer("ref", "concepts", "embed"), store.layer("ref", "concepts", 0))
    assert np.array_equal(store.layer("ref", "concepts", "1"), store.layer("ref", "concepts", 2))  # block 1's output
    assert np.array_equal(store.layer("ref", "concepts", "blocks.1.hook_resid_post"), store.layer("ref", "concepts", 2))
    with pytest.raises(LayerdriftError, match="'last' is not a residual point of variant 'ref'"):
        store.layer("ref", "concepts", "last")


def test_left_and_right_padding_agree(tiny_model, vocab_file, tmp_path):
    right = extract(tiny_config(tiny_model, vocab_file, tmp_path / "r", padding_side="right"), quiet=True)
    left = extract(tiny_config(tiny_model, vocab_file, tmp_path / "l", padding_side="left"), quiet=True)
    for layer in range(5):
        np.testing.assert_allclose(
            right.layer("ref", "concepts", layer), left.layer("ref", "concepts", layer), atol=1e-5
        )


def test_match_position_picks_term_token(tiny_model, vocab_file, tmp_path):
    store = extract(tiny_config(tiny_model, vocab_file, tmp_path / "run", positions=["match:{term}"]), quiet=True)
    toks = store.tokenization("ref", "concepts")
    for text, offsets_tokens, pos in zip(toks["texts"], toks["tokens"], toks["positions"]["match:{term}"]):
        # the chosen token is the last one of the term, i.e. the one right before " is"
        assert pos[0] == len(offsets_tokens) - 2, (text, offsets_tokens)
    assert store.manifest["captures"]["ref/concepts"]["multi_token_terms"], (
        "'South Korea' spans several tokens and must be flagged"
    )
    assert "South Korea" in store.manifest["captures"]["ref/concepts"]["multi_token_terms"]


def test_bos_policy_and_chat_template(tiny_model):
    from transformers import AutoTokenizer

    from layerdrift.errors import LayerdriftError
    from layerdrift.hooks.prompts import encode_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model)
    auto = encode_prompt(tok, "The concept of love is")
    assert auto.ids[0] == tok.bos_token_id
    no = encode_prompt(tok, "The concept of love is", prepend_bos="no")
    assert no.ids == auto.ids[1:]
    yes = encode_prompt(tok, "The concept of love is", prepend_bos="yes")
    assert yes.ids == auto.ids
    chat = encode_prompt(tok, "The concept of love is", chat_template=True)
    assert chat.text.startswith("<s>user: The concept of love is") and chat.text.endswith("assistant:")
    tok.chat_template = None
    with pytest.raises(LayerdriftError, match="no chat template"):
        encode_prompt(tok, "x", chat_template=True)
