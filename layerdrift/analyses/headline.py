"""The EmbeddingDrift headline tables at one layer: pair table, category table, top drifters."""

from __future__ import annotations

import numpy as np
import pandas as pd
from jaxtyping import Float

from layerdrift.analyses.drift import percentile_rank
from layerdrift.analyses.uncertainty import bootstrap_mean_ci, category_permutation_test


def pair_row(pair: str, drift: Float[np.ndarray, " n"], n_boot: int, seed: int) -> dict[str, float | str]:
    """Mean, std, median, min, max drift of one variant pair, with a bootstrap CI of the mean."""
    lo, hi = bootstrap_mean_ci(drift, n_boot=n_boot, seed=seed)
    return {
        "pair": pair,
        "mean": float(drift.mean()),
        "std": float(drift.std(ddof=1)),
        "median": float(np.median(drift)),
        "min": float(drift.min()),
        "max": float(drift.max()),
        "ci_low": float(lo),
        "ci_high": float(hi),
    }


def category_rows(
    pair: str, drift: Float[np.ndarray, " n"], categories: list[str], n_boot: int, n_perm: int, seed: int
) -> list[dict[str, float | str]]:
    """Per category: mean, median, std, max drift, its share of the top quartile and of the vocabulary,
    a bootstrap CI of the mean, and a permutation p-value against the other categories."""
    cats = np.asarray(categories)
    top = drift >= np.quantile(drift, 0.75)
    test = category_permutation_test(drift, categories, n_perm=n_perm, seed=seed)
    rows = []
    for cat in dict.fromkeys(categories):
        d = drift[cats == cat]
        lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "pair": pair,
                "category": cat,
                "n": int(d.size),
                "mean": float(d.mean()),
                "median": float(np.median(d)),
                "std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
                "max": float(d.max()),
                "share_top_quartile": float(100.0 * np.sum(top & (cats == cat)) / top.sum()),
                "share_vocabulary": float(100.0 * d.size / drift.size),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_vs_rest": float(test["p_vs_rest"][cat]),
                "p_omnibus": float(test["p_omnibus"]),
            }
        )
    return rows


def top_drifters(
    pair: str, drift: Float[np.ndarray, " n"], terms: list[str], categories: list[str], top_n: int = 30
) -> pd.DataFrame:
    """The top_n concepts by drift (ties by vocabulary order), with category and percentile."""
    order = np.argsort(-drift, kind="stable")[:top_n]
    pct = percentile_rank(drift)
    return pd.DataFrame(
        {
            "pair": pair,
            "rank": np.arange(1, len(order) + 1),
            "term": [terms[i] for i in order],
            "category": [categories[i] for i in order],
            "drift": drift[order],
            "percentile": pct[order],
        }
    )
