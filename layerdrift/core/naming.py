"""Names shared by every room: hook points, residual-point labels, file-safe slugs.

Two indices name places in a model, each with one meaning in every table:

- ``layer``: the residual-point index, 0 = the embedding, i + 1 = the output of block i, the last = the
  final norm's output; its ``label`` is ``embed``, ``0`` ... ``N-1``, ``final`` (an ordered categorical, so
  sorting by label sorts by depth).
- ``block``: the transformer block index, where something is done to a block (patching, steering); block i's
  output is residual point i + 1, labelled ``i``.
"""

from __future__ import annotations

import re

import pandas as pd

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


def point_phrase(label: str) -> str:
    """A point label in a sentence: "block 11", "the embedding", "the final norm"."""
    return {"embed": "the embedding", "final": "the final norm"}.get(label, f"block {label}")


def point_depth(label: str) -> float:
    """Where a point label sits along depth: embed < 0 < 1 < ... < final."""
    return -1.0 if label == "embed" else float("inf") if label == "final" else float(label)


LABEL_COLUMNS = ("label", "label_a", "label_b")
_POINT_LABEL = re.compile(r"embed|final|\d+")


def with_ordered_labels(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each point-label column (``label``, ``label_a``, ``label_b``) as an ordered categorical in
    depth order; a column holding anything else (e.g. ``all``) is left as it is."""
    out = table
    for col in LABEL_COLUMNS:
        if col not in table or isinstance(table[col].dtype, pd.CategoricalDtype):
            continue
        values = table[col].dropna().astype(str).unique().tolist()
        if values and all(_POINT_LABEL.fullmatch(v) for v in values):
            order = sorted(values, key=point_depth)
            out = out if out is not table else table.copy()
            out[col] = pd.Categorical(table[col], categories=order, ordered=True)
    return out


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
