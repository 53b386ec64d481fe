"""Where along depth two variants start to differ: the onset, the break and the half-way depth of a depth curve.

A depth curve is a per-prompt measure of how a pair of variants differs at each residual point, ``values`` of shape
(n, points): cosine drift, 1 - Jaccard, common-lens JS, or 1 - CKA (one value per point, resampled through its Gram
matrices). Its threshold at each point comes from the noise-floor pair (the reference against its bfloat16 copy) on
the same prompts: the floor's 95th percentile over prompts, so a point is past the onset when the mean prompt moves
more than 95% of prompts move under the floor alone; without a floor the threshold is 0.

- onset: the first point whose mean exceeds its threshold;
- break: the point reached by the largest single rise of the mean along depth (the step from point l - 1 to l);
- half: the first point whose mean reaches half of the curve's value at the last point.

Each comes with a percentile bootstrap CI over prompts: prompts are resampled with replacement, the pair's and the
floor's together, and the three points found again on every resample (row 0 of every ``curves`` array is the plain
estimate, rows 1.. the resamples). A statistic that is undefined on a resample (the curve never crosses) is left out
of its CI; ``defined`` says on what share of resamples the onset exists.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

FLOOR_QUANTILE = 0.95


def resamples(n: int, n_boot: int, seed: int) -> Int[np.ndarray, "boot1 n"]:
    """Row 0 every prompt once (the plain estimate), rows 1..n_boot prompts drawn with replacement."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.arange(n)[None], rng.integers(0, n, size=(n_boot, n))])


def mean_curves(
    values: Float[np.ndarray, "n points"], idx: Int[np.ndarray, "boot1 n"]
) -> Float[np.ndarray, "boot1 points"]:
    """The mean curve over each resample's prompts."""
    return counts(idx) @ values / idx.shape[1]


def floor_thresholds(
    floor: Float[np.ndarray, "n points"] | None, idx: Int[np.ndarray, "boot1 n"], points: int
) -> Float[np.ndarray, "boot1 points"]:
    """The floor pair's ``FLOOR_QUANTILE`` over each resample's prompts at every point (zeros without a floor)."""
    if floor is None:
        return np.zeros((len(idx), points))
    return np.stack([np.quantile(floor[i], FLOOR_QUANTILE, axis=0) for i in idx])


def first_true(mask: np.ndarray) -> Float[np.ndarray, " boot1"]:
    """Per row, the index of the first True, or NaN when there is none."""
    first = mask.argmax(-1).astype(np.float64)
    first[~mask.any(-1)] = np.nan
    return first


def onsets(curves: np.ndarray, thresholds: np.ndarray) -> Float[np.ndarray, " boot1"]:
    return first_true(curves > thresholds)


def breaks(curves: np.ndarray) -> Float[np.ndarray, " boot1"]:
    """The point after the largest rise between consecutive points (NaN when the curve never rises)."""
    steps = np.nan_to_num(np.diff(curves, axis=-1), nan=-np.inf)  # no step into or out of an undefined point
    out = steps.argmax(-1).astype(np.float64) + 1
    out[~(steps.max(-1) > 0)] = np.nan
    return out


def halves(curves: np.ndarray) -> Float[np.ndarray, " boot1"]:
    """The first point reaching half the last point's value (NaN when the last value is not positive)."""
    final = curves[:, -1:]
    out = first_true(curves >= 0.5 * final)
    out[~(final[:, 0] > 0)] = np.nan
    return out


def interval(estimates: Float[np.ndarray, " boot1"], level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, CI low, CI high) from row 0 and the resamples; the CI's ends are points that occurred."""
    boot = estimates[1:][~np.isnan(estimates[1:])]
    if not len(boot):
        return float(estimates[0]), np.nan, np.nan
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail], method="inverted_cdf")
    return float(estimates[0]), float(low), float(high)


def locate(
    curves: Float[np.ndarray, "boot1 points"], thresholds: Float[np.ndarray, "boot1 points"]
) -> dict[str, float]:
    """Onset, break and half-way point of a depth curve and their bootstrap CIs, with the final value and the share
    of resamples on which the onset exists."""
    row: dict[str, float] = {}
    for name, found in (("onset", onsets(curves, thresholds)), ("break", breaks(curves)), ("half", halves(curves))):
        row[name], row[f"{name}_low"], row[f"{name}_high"] = interval(found)
        if name == "onset":
            row["onset_defined"] = float(np.mean(~np.isnan(found[1:]))) if len(found) > 1 else np.nan
    row["final"] = float(curves[0, -1])
    row["threshold_final"] = float(thresholds[0, -1])
    return row


def concept_onsets(
    values: Float[np.ndarray, "n points"], floor: Float[np.ndarray, "n points"] | None
) -> Float[np.ndarray, " n"]:
    """Each prompt's own onset: the first point where its value exceeds the floor's threshold (NaN: never)."""
    threshold = np.zeros(values.shape[1]) if floor is None else np.quantile(floor, FLOOR_QUANTILE, axis=0)
    return first_true(values > threshold)


def counts(idx: Int[np.ndarray, "boot1 n"]) -> Float[np.ndarray, "boot1 n"]:
    """How many times each prompt is drawn in each resample."""
    out = np.zeros(idx.shape)
    np.add.at(out, (np.repeat(np.arange(len(idx)), idx.shape[1]), idx.ravel()), 1.0)
    return out


def cka_curves(
    a: Float[np.ndarray, "points n d"], b: Float[np.ndarray, "points n e"], idx: Int[np.ndarray, "boot1 n"]
) -> Float[np.ndarray, "boot1 points"]:
    """1 - linear CKA (Kornblith et al. 2019) of a and b at every point on each resample's prompts, a prompt drawn
    c_i times counting c_i times. With Grams K, L built once per point, u = K c / n, v = L c / n and
    kappa = cᵀ K c / n², lambda = cᵀ L c / n², the resample's centred inner product is
    <K, L>_c = cᵀ (K ∘ L) c - 2n Σ c_i u_i v_i + n² kappa lambda, and CKA = <K, L>_c / sqrt(<K, K>_c <L, L>_c):
    five (resamples x n) by (n x n) products per point instead of a Gram per resample."""
    c = counts(idx)
    n = idx.shape[1]
    out = np.empty((len(idx), a.shape[0]))
    for p in range(a.shape[0]):
        k, l = a[p] @ a[p].T, b[p] @ b[p].T
        u, v = c @ k / n, c @ l / n
        kappa, lam = (u * c).sum(1) / n, (v * c).sum(1) / n

        def inner(m: np.ndarray, x: np.ndarray, y: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
            return ((c @ m) * c).sum(1) - 2 * n * (c * x * y).sum(1) + n * n * sx * sy

        kl = inner(k * l, u, v, kappa, lam)
        kk, ll = inner(k * k, u, u, kappa, kappa), inner(l * l, v, v, lam, lam)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, p] = 1.0 - kl / np.sqrt(kk * ll)
    return out
