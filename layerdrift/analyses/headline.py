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


SIGNIFICANCE = 0.05  # the level a category finding is called significant at, in the tables and the findings


def floor_log_ratio(drift: Float[np.ndarray, "... n"], floor: Float[np.ndarray, "... n"]) -> Float[np.ndarray, "... n"]:
    """log(d_i / f_i): each concept's drift in units of its own noise-floor drift (0 = no more than the floor's).

    NaN where either drift is 0 (a concept the floor leaves exactly in place has no scale to read against).
    """
    ok = (drift > 0) & (floor > 0)
    return np.where(ok, np.log(np.where(ok, drift, 1.0) / np.where(ok, floor, 1.0)), np.nan)


def category_rows(
    pair: str,
    drift: Float[np.ndarray, " n"],
    categories: list[str],
    n_boot: int,
    n_perm: int,
    seed: int,
    floor: Float[np.ndarray, " n"] | None = None,
    is_floor_pair: bool = False,
) -> list[dict[str, float | str]]:
    """Per category: mean, median, std, max drift, its share of the top quartile and of the vocabulary,
    a bootstrap CI of the mean, a permutation p-value against the other categories, and the same test on the
    drift read against the noise floor (``floor`` = the floor pair's drift of the same concepts), with a verdict."""
    cats = np.asarray(categories)
    top = drift >= np.quantile(drift, 0.75)
    test = category_permutation_test(drift, categories, n_perm=n_perm, seed=seed)
    against = floor_columns(drift, floor, cats, n_boot, n_perm, seed)
    rows = []
    for cat in dict.fromkeys(categories):
        d = drift[cats == cat]
        lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
        row = {
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
            "diff_vs_rest": float(test["diff_vs_rest"][cat]),
            "p_vs_rest": float(test["p_vs_rest"][cat]),
            "p_omnibus": float(test["p_omnibus"]),
            **against[cat],
        }
        rows.append({**row, "verdict": floor_verdict(row, floor is not None, is_floor_pair)})
    return rows


def floor_columns(
    drift: Float[np.ndarray, " n"],
    floor: Float[np.ndarray, " n"] | None,
    cats: np.ndarray,
    n_boot: int,
    n_perm: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Per category, the drift read against the floor: the floor's own mean drift there, and the mean, CI and
    permutation test vs the rest of the log ratio log(d_i / f_i) (concepts with a zero drift left out)."""
    names = list(dict.fromkeys(cats.tolist()))
    empty = dict.fromkeys(("floor_mean", "log_ratio_mean", "log_ratio_ci_low", "log_ratio_ci_high"), np.nan)
    empty |= {"log_ratio_diff_vs_rest": np.nan, "p_vs_rest_floor": np.nan}
    if floor is None:
        return {cat: dict(empty) for cat in names}
    ratio = floor_log_ratio(drift, floor)
    ok = np.isfinite(ratio)
    test = category_permutation_test(ratio[ok], cats[ok], n_perm=n_perm, seed=seed)
    out = {}
    for cat in names:
        r = ratio[ok & (cats == cat)]
        if r.size == 0 or cat not in test["p_vs_rest"]:
            out[cat] = dict(empty, floor_mean=float(floor[cats == cat].mean()))
            continue
        lo, hi = bootstrap_mean_ci(r, n_boot=n_boot, seed=seed)
        out[cat] = {
            "floor_mean": float(floor[cats == cat].mean()),
            "log_ratio_mean": float(r.mean()),
            "log_ratio_ci_low": float(lo),
            "log_ratio_ci_high": float(hi),
            "log_ratio_diff_vs_rest": float(test["diff_vs_rest"][cat]),
            "p_vs_rest_floor": float(test["p_vs_rest"][cat]),
        }
    return out


def floor_verdict(row: dict, has_floor: bool, is_floor_pair: bool = False) -> str:
    """Whether a category's difference from the rest is significant, and whether it survives the noise floor:
    its log ratio to the floor differs from the rest's in the same direction (both at SIGNIFICANCE)."""
    if not row["p_vs_rest"] < SIGNIFICANCE:
        return "not significant"
    if is_floor_pair:
        return "significant in the floor itself"
    if not has_floor:
        return "no floor to read against"
    same_direction = np.sign(row["log_ratio_diff_vs_rest"]) == np.sign(row["diff_vs_rest"])
    if row["p_vs_rest_floor"] < SIGNIFICANCE and same_direction:
        return "survives the floor"
    return "does not survive the floor"


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
