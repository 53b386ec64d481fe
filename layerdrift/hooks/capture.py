"""Capture activations at TransformerLens hook points, gathered at chosen token positions.

The residual stream is captured as distinct points: the embedding output (``hook_embed``),
every block output (``blocks.{i}.hook_resid_post``), and the final norm's output
(``ln_final.hook_out``, equal to Hugging Face's last hidden state). Only the selected positions
leave the hook, so memory holds one batch of selected vectors, not whole activations.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from layerdrift.core.naming import RESIDUAL, residual_hook_names
from layerdrift.errors import LayerdriftError


def expand_hook_names(specs: list[str], n_layers: int, available: Collection[str], where: str) -> list[str]:
    """Expand ``residual`` and ``{layer}`` patterns to concrete hook names, checked against the model (every unknown one
    named at once)."""
    import difflib

    names: list[str] = []
    unknown: list[str] = []
    for spec in specs:
        if spec == RESIDUAL:
            expanded = residual_hook_names(n_layers)
        elif "{layer}" in spec:
            expanded = [spec.format(layer=i) for i in range(n_layers)]
        else:
            expanded = [spec]
        for name in expanded:
            if name not in available:
                close = difflib.get_close_matches(name, list(available), n=1)
                unknown.append(f"'{name}'" + (f" (closest: '{close[0]}')" if close else ""))
            elif name not in names:
                names.append(name)
    if unknown:
        raise LayerdriftError(
            f"hook point{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"{'do' if len(unknown) > 1 else 'does'} not exist in {where}; list hook names "
            "with `layerdrift hooks VARIANT_SOURCE`."
        )
    return names


@torch.no_grad()
def capture_batch(
    bridge: torch.nn.Module,
    input_ids: Int[torch.Tensor, "b t"],
    attention_mask: Int[torch.Tensor, "b t"],
    hook_names: list[str],
    index: Int[torch.Tensor, "b p"],
    valid: Bool[torch.Tensor, "b p"],
) -> dict[str, Float[np.ndarray, "b p d"]]:
    """Run one forward pass and return, per hook, the activations at ``index`` (padded coordinates).

    Slots where ``valid`` is False are zero. Hook outputs must be ``(batch, pos, ...)``; trailing
    dims are flattened (e.g. ``attn.hook_z`` becomes heads*d_head).
    """
    device = next(bridge.parameters()).device
    rows = torch.arange(index.shape[0], device=device)[:, None]
    index_d, valid_d = index.to(device), valid.to(device)
    out: dict[str, np.ndarray] = {}

    def make_hook(name: str):
        def hook(act: torch.Tensor, hook=None) -> None:
            if act.ndim < 3 or act.shape[0] != index.shape[0] or act.shape[1] != input_ids.shape[1]:
                raise LayerdriftError(
                    f"hook point '{name}' gives shape {tuple(act.shape)}, not (batch, position, ...); "
                    "capture it with another tool or pick a residual-like hook."
                )
            sel = act[rows, index_d].reshape(index.shape[0], index.shape[1], -1)
            sel = torch.where(valid_d[..., None], sel, torch.zeros((), dtype=sel.dtype, device=device))
            out[name] = sel.to(torch.float32).cpu().numpy()

        return hook

    with bridge.hooks(fwd_hooks=[(name, make_hook(name)) for name in hook_names]):
        bridge(input_ids.to(device), attention_mask=attention_mask.to(device), return_type=None)
    missing = [n for n in hook_names if n not in out]
    if missing:
        raise LayerdriftError(
            f"hook point '{missing[0]}' never fired during the forward pass; it is not on this model's forward path."
        )
    return out
