"""Activation-patching metrics: log p(target), logit difference, and the normalised effect.

The normalised effect of patching source S into receiver R is
``(mean(m_patched) - mean(m_R)) / (mean(m_S) - mean(m_R))``: 0 = the receiver's own behaviour,
1 = the source's. Means are taken over prompts before dividing, so prompts whose two clean
values nearly agree do not blow the ratio up.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int


def target_logprob(
    logits: Float[np.ndarray, "... k"], lse: Float[np.ndarray, "..."], column: int
) -> Float[np.ndarray, "..."]:
    """log p(token) from its logit and the log-sum-exp over the vocabulary."""
    return logits[..., column] - lse


def logit_difference(logits: Float[np.ndarray, "... k"], toward: int, away: int) -> Float[np.ndarray, "..."]:
    """logit(toward) - logit(away): positive when the model prefers ``toward``."""
    return logits[..., toward] - logits[..., away]


def normalised_effect(
    patched: Float[np.ndarray, "... n"], clean_receiver: Float[np.ndarray, " n"], clean_source: Float[np.ndarray, " n"]
) -> Float[np.ndarray, "..."]:
    """(mean patched - mean receiver) / (mean source - mean receiver), over prompts with finite values; NaN when the gap
    is
    0."""
    ok = np.isfinite(clean_receiver) & np.isfinite(clean_source)
    patched = np.where(ok, patched, np.nan)
    gap = np.nanmean(np.where(ok, clean_source, np.nan)) - np.nanmean(np.where(ok, clean_receiver, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.nanmean(patched, axis=-1) - np.nanmean(np.where(ok, clean_receiver, np.nan))) / (
            gap if gap != 0 else np.nan
        )


def first_divergence(a: Int[np.ndarray, " p"] | list[int], b: Int[np.ndarray, " q"] | list[int]) -> int | None:
    """Index of the first token where two sequences differ (None if neither has one there)."""
    for j, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return j
    return None
