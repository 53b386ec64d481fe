"""Bootstrap confidence intervals (concepts resampled) and permutation tests for category differences."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float


def bootstrap_mean_ci(
    values: Float[np.ndarray, "n ..."], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[Float[np.ndarray, "..."], Float[np.ndarray, "..."]]:
    """Percentile CI of the mean over axis 0, resampling rows with replacement (all columns together).

    ``values`` may be (n,) for one statistic or (n, L) for a whole per-layer curve: the same
    resampled concepts are used for every layer, so bands are coherent along the curve.
    """
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    idx = rng.integers(0, n, size=(n_boot, n))
    means = values[idx].mean(axis=1)  # (n_boot, ...)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return lo, hi


def group_means(values: Float[np.ndarray, " n"], codes: np.ndarray, n_groups: int) -> Float[np.ndarray, "... g"]:
    """Mean of values per group; ``codes`` may carry leading permutation axes."""
    one_hot = codes[..., None] == np.arange(n_groups)
    return (one_hot * values[..., None]).sum(-2) / one_hot.sum(-2)


def category_permutation_test(
    values: Float[np.ndarray, " n"], categories: list[str] | np.ndarray, n_perm: int = 5000, seed: int = 0
) -> dict[str, object]:
    """Do category means differ more than label shuffles allow?

    Omnibus statistic: between-category sum of squares, sum_g n_g (mean_g - mean)^2. Per category:
    mean_g - mean of the rest, two-sided. p-values are (1 + #{perm >= observed}) / (1 + n_perm).
    """
    values = np.asarray(values, dtype=np.float64)
    names, codes = np.unique(np.asarray(categories), return_inverse=True)
    g = len(names)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(codes) for _ in range(n_perm)])
    counts = np.bincount(codes, minlength=g)
    grand = values.mean()
    total = values.sum()

    def stats(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means = group_means(values, c, g)
        between = (counts * (means - grand) ** 2).sum(-1)
        rest = (total - means * counts) / (len(values) - counts)
        return between, means - rest

    obs_between, obs_diff = stats(codes)
    perm_between, perm_diff = stats(perms)
    p_omnibus = (1 + np.sum(perm_between >= obs_between - 1e-15)) / (1 + n_perm)
    p_each = (1 + np.sum(np.abs(perm_diff) >= np.abs(obs_diff) - 1e-15, axis=0)) / (1 + n_perm)
    return {
        "categories": names.tolist(),
        "between_ss": float(obs_between),
        "p_omnibus": float(p_omnibus),
        "diff_vs_rest": dict(zip(names.tolist(), obs_diff.tolist())),
        "p_vs_rest": dict(zip(names.tolist(), p_each.tolist())),
    }
