"""Activation-patching metrics: log p(target), logit difference, and the normalised effect.

The normalised effect of patching source S into receiver R is
``(mean(m_patched) - mean(m_R)) / (mean(m_S) - mean(m_R))``: 0 = the receiver's own behaviour,
1 = the source's. Means are taken over prompts before dividing, and prompts whose two clean values nearly
agree (near-ties, |m_S - m_R| below a threshold) are left out: their gap is noise, and a denominator made of
noise swings the ratio from block to block. The CI resamples prompts (percentile bootstrap of the ratio).
"""

from __future__ import annotations

import warnings

import numpy as np
from jaxtyping import Bool, Float, Int


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
    is 0 or no prompt is left."""
    ok = np.isfinite(clean_receiver) & np.isfinite(clean_source)
    patched = np.where(ok, patched, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no prompt left: NaN, as documented
        receiver = np.nanmean(np.where(ok, clean_receiver, np.nan))
        gap = np.nanmean(np.where(ok, clean_source, np.nan)) - receiver
        return (np.nanmean(patched, axis=-1) - receiver) / (gap if gap != 0 else np.nan)


def near_ties(
    clean_receiver: Float[np.ndarray, " n"], clean_source: Float[np.ndarray, " n"], min_gap: float
) -> Bool[np.ndarray, " n"]:
    """Prompts whose two clean values differ by less than ``min_gap`` (NaN gaps are not ties: they are left out as
    undefined)."""
    with np.errstate(invalid="ignore"):
        return np.abs(clean_source - clean_receiver) < min_gap


def normalised_effect_resamples(
    patched: Float[np.ndarray, "... n"],
    clean_receiver: Float[np.ndarray, " n"],
    clean_source: Float[np.ndarray, " n"],
    n_boot: int,
    seed: int = 0,
) -> Float[np.ndarray, "... boot"]:
    """``normalised_effect`` on ``n_boot`` bootstrap resamples of the prompts (the same resamples for every block and
    position, so a whole depth curve is resampled together). Each resample's means are count-weighted sums, so no copy
    of ``patched`` is made."""
    ok = np.isfinite(clean_receiver) & np.isfinite(clean_source)
    n = ok.size
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).T  # (n, boot)

    def mean(x: np.ndarray) -> np.ndarray:
        valid = np.isfinite(x) & ok
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(valid, x, 0.0) @ weights) / (valid @ weights)

    receiver = mean(clean_receiver)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = mean(clean_source) - receiver
        return (mean(patched) - receiver) / np.where(gap == 0, np.nan, gap)


def normalised_effect_ci(
    patched: Float[np.ndarray, "... n"],
    clean_receiver: Float[np.ndarray, " n"],
    clean_source: Float[np.ndarray, " n"],
    n_boot: int,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[Float[np.ndarray, "..."], Float[np.ndarray, "..."]]:
    """Percentile bootstrap CI of ``normalised_effect`` (``normalised_effect_resamples``)."""
    return effect_interval(normalised_effect_resamples(patched, clean_receiver, clean_source, n_boot, seed), level)


def effect_interval(
    effects: Float[np.ndarray, "... boot"], level: float = 0.95
) -> tuple[Float[np.ndarray, "..."], Float[np.ndarray, "..."]]:
    """The percentile interval of resampled effects (a cell without one defined resample is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(effects, [(1 - level) / 2, 1 - (1 - level) / 2], axis=-1)
    return low, high


def first_divergence(a: Int[np.ndarray, " p"] | list[int], b: Int[np.ndarray, " q"] | list[int]) -> int | None:
    """Index of the first token where two sequences differ (None if neither has one there)."""
    for j, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return j
    return None
