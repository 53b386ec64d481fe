"""A loaded model's read-out (final norm and unembedding) as a ``LensHead``, or one sentence saying why it cannot be
read."""

from __future__ import annotations

from typing import Any

import torch

from layerdrift.analyses.lens import LensHead
from layerdrift.errors import LayerdriftError

FINAL_NORMS = ("model.norm", "transformer.ln_f", "model.final_layernorm", "gpt_neox.final_layer_norm")


def _module(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part, None)
        if model is None:
            return None
    return unwrapped(model)


def unwrapped(module: Any) -> Any:
    """The Hugging Face module itself, also where a TransformerLens bridge wraps it (``original_component``)."""
    return getattr(module, "original_component", None) or module


def norm_kind(norm: Any) -> str | None:
    """``rms``, ``rms_offset`` (Gemma's x̂ (1 + w)), ``layer``, or None for a norm this does not know."""
    name = type(norm).__name__
    if isinstance(norm, torch.nn.LayerNorm):
        return "layer"
    if name.endswith("RMSNorm"):
        return "rms_offset" if name.startswith("Gemma") else "rms"
    return None


def read_lens_head(model: Any, variant: str) -> LensHead:
    """The final norm and unembedding of a Hugging Face causal LM, copied to the CPU in float32."""
    norm = next((m for p in FINAL_NORMS if (m := _module(model, p)) is not None), None)
    unembed = unwrapped(model.get_output_embeddings()) if hasattr(model, "get_output_embeddings") else None
    kind = None if norm is None else norm_kind(norm)
    weight = None if unembed is None else getattr(unembed, "weight", None)
    if norm is None or kind is None:
        found = "no final norm" if norm is None else f"a final norm of a kind it does not know ({type(norm).__name__})"
        raise LayerdriftError(f"the lens cannot read variant '{variant}': it has {found}.")
    if weight is None or not torch.is_floating_point(weight) or weight.dim() != 2:
        what = "no unembedding" if weight is None else f"an unembedding stored as {weight.dtype} {tuple(weight.shape)}"
        raise LayerdriftError(f"the lens cannot read variant '{variant}': it has {what} (e.g. a quantized lm_head).")
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))

    def cpu(t: Any) -> torch.Tensor | None:
        return None if t is None else t.detach().to("cpu", torch.float32).clone()

    return LensHead(
        unembed=cpu(weight),
        norm_weight=cpu(norm.weight),
        norm_kind=kind,
        eps=float(eps),
        norm_bias=cpu(getattr(norm, "bias", None)),
        unembed_bias=cpu(getattr(unembed, "bias", None)),
        softcap=getattr(model.config, "final_logit_softcapping", None),
    )


def vocabulary_text(tokenizer: Any) -> list[str]:
    """Every token id decoded alone: what the lens shows for a token."""
    return tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
