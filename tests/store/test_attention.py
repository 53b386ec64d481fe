"""Fused (sdpa) attention when nothing inside attention is read: the same residual stream as eager attention, the
model's own fused kernel really runs, and ``auto`` picks it only on CUDA and only when no hook reads inside
attention. The ``gpu`` tests run where CUDA is (skipped elsewhere): bf16 by default, memory back to its baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from layerdrift.errors import LayerdriftError
from layerdrift.hooks.attention import needs_eager_attention
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.loading import free, load_variant, pick_attention

HOOKS = ["hook_embed", "blocks.0.hook_attn_out", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


def capture(loaded, texts: list[str]) -> dict[str, np.ndarray]:
    """Every hook of HOOKS at every token of each text, one forward per text."""
    out: dict[str, list[np.ndarray]] = {h: [] for h in HOOKS}
    for text in texts:
        ids = loaded.tokenizer(text, return_tensors="pt").input_ids.to(loaded.device)
        with torch.no_grad():
            _, cache = loaded.bridge.run_with_cache(ids, names_filter=lambda n: n in HOOKS)
        for h in HOOKS:
            out[h].append(cache[h][0].float().cpu().numpy())
    return {h: np.concatenate(v) for h, v in out.items()}


def counting_sdpa(monkeypatch) -> list[int]:
    calls = [0]
    real = torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


TEXTS = ["The concept of love is", "Paris is the capital of", "An electron is a"]


def test_sdpa_attention_runs_the_fused_kernel_and_leaves_the_residual_stream_as_eager(tiny_model, monkeypatch):
    eager = load_variant(VariantSpec(name="e", source=str(tiny_model), attn_implementation="eager"))
    fused = load_variant(VariantSpec(name="f", source=str(tiny_model), attn_implementation="sdpa"))
    calls = counting_sdpa(monkeypatch)
    a = capture(eager, TEXTS)
    assert calls[0] == 0
    b = capture(fused, TEXTS)
    assert calls[0] == 3 * len(TEXTS)  # one fused call per block per forward: the fused kernel really ran
    assert fused.info["attn_implementation"] == "sdpa" and eager.info["attn_implementation"] == "eager"
    for h in HOOKS:  # hook_attn_out fires on the fused path too (patching reads it)
        scale = np.abs(a[h]).max()
        np.testing.assert_allclose(b[h], a[h], rtol=0, atol=1e-5 * scale, err_msg=h)


@pytest.mark.parametrize(
    ("hooks", "eager"),
    [
        (["residual"], False),
        (["residual", "blocks.{layer}.hook_attn_out", "blocks.{layer}.attn.hook_out"], False),
        (["blocks.{layer}.attn.hook_pattern"], True),
        (["residual", "blocks.3.attn.hook_attn_scores"], True),
        (["blocks.{layer}.attn.hook_z"], True),
        (["blocks.0.attn.hook_rot_q"], True),
    ],
)
def test_hooks_inside_attention_need_eager_attention(hooks, eager):
    assert needs_eager_attention(hooks) is eager


def test_auto_attention_is_sdpa_on_cuda_only_and_never_under_an_attention_hook():
    assert pick_attention("auto", "cpu", False, "v") == "eager"
    assert pick_attention("auto", "cuda", False, "v") == "sdpa"
    assert pick_attention("auto", "cuda:1", True, "v") == "eager"
    assert pick_attention("eager", "cuda", False, "v") == "eager"
    assert pick_attention("sdpa", "cpu", False, "v") == "sdpa"
    with pytest.raises(LayerdriftError, match="variant 'nf4' asks for attn_implementation = 'sdpa', but capture.hooks"):
        pick_attention("sdpa", "cuda", True, "nf4")


def test_a_capture_inside_attention_with_sdpa_is_refused(tiny_model, vocab_file, tmp_path):
    from layerdrift.workbench.config import config_from_dict
    from layerdrift.workbench.store.extract import extract

    data = tiny_config(tiny_model, vocab_file, tmp_path / "run", hooks=["residual", "blocks.{layer}.attn.hook_z"])
    data = data.model_dump(mode="json", exclude_none=True)
    data["variants"][1]["attn_implementation"] = "sdpa"
    with pytest.raises(LayerdriftError, match="variant 'copy' asks for attn_implementation = 'sdpa'"):
        extract(config_from_dict(data), quiet=True)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
def test_on_cuda_auto_is_bf16_with_sdpa_and_memory_returns_to_its_baseline(tiny_model):
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    loaded = load_variant(VariantSpec(name="g", source=str(tiny_model)))
    assert loaded.dtype == torch.bfloat16 and loaded.info["attn_implementation"] == "sdpa"
    fused = capture(loaded, TEXTS)
    free(loaded)
    del loaded
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == baseline
    eager = load_variant(VariantSpec(name="e", source=str(tiny_model), attn_implementation="eager"))
    reference = capture(eager, TEXTS)
    free(eager)
    for h in HOOKS:  # bf16 keeps 8 bits of mantissa: equal to a few parts in a hundred of the scale
        scale = np.abs(reference[h]).max()
        np.testing.assert_allclose(fused[h], reference[h], rtol=0, atol=0.05 * scale, err_msg=h)
