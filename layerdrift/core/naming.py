"""Names shared by every room: hook points, residual-point labels, file-safe slugs."""

from __future__ import annotations

import re

RESIDUAL = "residual"  # the hook spec that expands to every residual point
EMBED_HOOK = "hook_embed"
FINAL_NORM_HOOK = "ln_final.hook_out"


def residual_hook_names(n_layers: int) -> list[str]:
    """Residual-stream points in depth order: embedding, each block output, final norm."""
    return [EMBED_HOOK, *[f"blocks.{i}.hook_resid_post" for i in range(n_layers)], FINAL_NORM_HOOK]


def point_label(hook: str) -> str:
    """Short label of a residual point: embed, block index, or final."""
    if hook == "hook_embed":
        return "embed"
    if hook.startswith("ln_final"):
        return "final"
    return hook.split(".")[1]


def safe_name(text: str) -> str:
    """A filesystem-safe slug for position specs and the like."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


ARROW = "→"  # pair labels in tables: "reference→nf4"; "reference->nf4" is accepted wherever a pair is looked up


def pair_label(a: str, b: str) -> str:
    """The pair label the tables use: ``a→b``."""
    return f"{a}{ARROW}{b}"


def parse_pair(pair: str | tuple[str, str]) -> str:
    """A pair label from ``("a", "b")``, ``"a->b"`` or ``"a→b"``."""
    if isinstance(pair, tuple):
        return pair_label(*pair)
    return pair.replace("->", ARROW)


def pair_key(label: str) -> str:
    """A file-safe key for a pair label: ``a→b`` -> ``a_vs_b``."""
    return safe_name(label.replace(ARROW, "_vs_"))
