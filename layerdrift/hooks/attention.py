"""Fused attention when nothing inside attention is hooked.

TransformerLens's bridge recomputes rotary-embedding attention (Llama, Gemma, Qwen, ...) step by step, so that
``hook_q``, ``hook_k``, ``hook_attn_scores``, ``hook_pattern`` and the rest can fire. That is eager attention: it
writes out every (query, key) score. When a capture only reads the attention block's input and output (and the
residual stream around it), the model's own attention module with PyTorch's fused scaled-dot-product kernel
(``sdpa``) gives the same residual stream (float32: 1.5e-6 of its scale apart on SmolLM2) in far less memory on a
GPU. ``use_fused_attention`` routes each such block through the wrapped module, keeping its ``hook_in`` and
``hook_out`` (``blocks.N.hook_attn_out``), which patching uses.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

FUSED_KEEPS = ("hook_in", "hook_out")  # the hooks of an attention block that fire either way


def needs_eager_attention(hook_names: Iterable[str]) -> bool:
    """True when a hook name (or ``{layer}`` pattern) reads inside attention: queries, keys, values, scores,
    pattern, rotary outputs. Only the bridge's step-by-step (eager) attention computes those."""
    return any(".attn." in name and not name.endswith(FUSED_KEEPS) for name in hook_names)


def use_fused_attention(bridge: Any) -> int:
    """Let every step-by-step attention block of ``bridge`` call its wrapped Hugging Face module instead (which runs
    the model config's attention implementation, set to ``sdpa`` by the caller); returns how many blocks changed."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge
    from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
        PositionEmbeddingsAttentionBridge,
    )

    blocks = [m for m in bridge.modules() if isinstance(m, PositionEmbeddingsAttentionBridge)]
    for block in blocks:  # the bridge forwards attribute writes to the wrapped module, so set it on the block itself
        object.__setattr__(block, "forward", types.MethodType(AttentionBridge.forward, block))
    return len(blocks)
