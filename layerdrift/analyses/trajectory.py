"""Change along an ordered checkpoint series: distances between checkpoints, velocity, early concentration.

Velocity is the distance between consecutive checkpoints (representational: mean cosine drift of the
concept vectors; topological: Wasserstein distance between persistence diagrams). The early-concentration
statistic ``C`` is the share of the summed velocity that falls in the first third of the intervals; its
null distribution comes from random orderings of the same checkpoints (the persistent-homology study's
test), so ``C`` is compared with paths through the same points in shuffled order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

from layerdrift.analyses.drift import l2_normalize
from layerdrift.analyses.uncertainty import bootstrap_mean_ci


def checkpoint_drift_matrix(stack: Float[np.ndarray, "k n d"]) -> Float[np.ndarray, "k k"]:
    """Mean cosine drift between every two checkpoints' concept vectors: D[i, j] = mean_n (1 - cos(x_in, x_jn))."""
    u = l2_normalize(stack)
    cos = np.einsum("ind,jnd->ij", u, u) / stack.shape[1]
    out = 1.0 - cos
    np.fill_diagonal(out, 0.0)
    return out


def path_velocities(
    distances: Float[np.ndarray, "... k k"], order: Int[np.ndarray, " k"] | None = None
) -> Float[np.ndarray, "... m"]:
    """Distances between consecutive checkpoints along ``order`` (default: training order); m = k - 1."""
    k = distances.shape[-1]
    order = np.arange(k) if order is None else np.asarray(order)
    return distances[..., order[:-1], order[1:]]


def early_count(n_intervals: int) -> int:
    """How many intervals make up 'the first third' (at least one)."""
    return max(1, n_intervals // 3)


def early_concentration(velocities: Float[np.ndarray, "... m"]) -> Float[np.ndarray, "..."]:
    """C = sum of the first third of the velocities / their total (NaN when nothing moved)."""
    m = velocities.shape[-1]
    total = velocities.sum(-1)
    first = velocities[..., : early_count(m)].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, first / np.where(total > 0, total, 1.0), np.nan)


def half_distance_step(
    from_start: Float[np.ndarray, "... k"], steps: Float[np.ndarray, " k"]
) -> Float[np.ndarray, "..."]:
    """Training step at which the distance from step 0 first reaches half its final value (linear between checkpoints).

    Unlike C, it does not depend on how densely the checkpoints are spaced; NaN when nothing moved.
    """
    steps = np.asarray(steps, dtype=np.float64)
    target = from_start[..., -1:] / 2.0
    reached = from_start >= target
    reached[..., 0] = False if from_start.shape[-1] > 1 else reached[..., 0]
    first = np.argmax(reached, axis=-1)  # the first checkpoint at or past half (>= 1)
    prev = np.maximum(first - 1, 0)
    d_prev = np.take_along_axis(from_start, prev[..., None], -1)[..., 0]
    d_first = np.take_along_axis(from_start, first[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((target[..., 0] - d_prev) / np.where(d_first > d_prev, d_first - d_prev, 1.0), 0.0, 1.0)
    out = steps[prev] + frac * (steps[first] - steps[prev])
    return np.where(from_start[..., -1] > 0, out, np.nan)


@dataclass(frozen=True)
class ConcentrationTest:
    """Observed C, its one-sided permutation p-value, the null's mean, and the velocity band per interval."""

    c: Float[np.ndarray, "..."]
    p: Float[np.ndarray, "..."]
    null_mean: Float[np.ndarray, "..."]
    band: Float[np.ndarray, "... m 3"]  # 2.5%, 50%, 97.5% of the velocity at each interval under random orderings
    expected: float  # share of the intervals in the first third: C under perfectly even change


def concentration_test(distances: Float[np.ndarray, "... k k"], n_perm: int = 2000, seed: int = 0) -> ConcentrationTest:
    """Permutation test of early concentration: p = (1 + #{C_perm >= C_obs}) / (1 + n_perm) over random checkpoint
    orderings.

    Leading axes (e.g. layers) share the same orderings, so their p-values are computed on one null draw.
    """
    k = distances.shape[-1]
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, k)), axis=1)
    observed = early_concentration(path_velocities(distances))
    null_v = distances[..., perms[:, :-1], perms[:, 1:]]  # (..., n_perm, m)
    null_c = early_concentration(null_v)
    with np.errstate(invalid="ignore"):
        p = (1 + np.sum(null_c >= observed[..., None] - 1e-12, axis=-1)) / (1 + n_perm)
    p = np.where(np.isnan(observed), np.nan, p)
    band = np.moveaxis(np.quantile(null_v, [0.025, 0.5, 0.975], axis=-2), 0, -1)
    with np.errstate(invalid="ignore"):
        counted = np.sum(~np.isnan(null_c), axis=-1)
        null_mean = np.where(counted > 0, np.nansum(null_c, axis=-1) / np.maximum(counted, 1), np.nan)
    return ConcentrationTest(observed, p, null_mean, band, early_count(k - 1) / (k - 1))


def centre_of_mass(velocities: Float[np.ndarray, "... m"]) -> Float[np.ndarray, "..."]:
    """When along training the change happens: sum_t t v_t / sum_t v_t over intervals t = 0..m-1 (NaN when nothing
    moved)."""
    t = np.arange(velocities.shape[-1], dtype=np.float64)
    total = velocities.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (velocities * t).sum(-1) / np.where(total > 0, total, 1.0), np.nan)


@dataclass(frozen=True)
class LeadLag:
    """Mean lag of ``second`` behind ``first`` in checkpoint intervals (> 0: ``second`` changes later), its bootstrap
    CI over prompts, the two-sided sign-flip permutation p-value, and how many prompts moved in both."""

    lag: float
    low: float
    high: float
    p: float
    n: int


def lead_lag(
    first: Float[np.ndarray, "n m"],
    second: Float[np.ndarray, "n m"],
    n_perm: int = 2000,
    n_boot: int = 2000,
    seed: int = 0,
) -> LeadLag:
    """Which of two velocities along the same checkpoints comes first, prompt by prompt.

    Per prompt, lag_p = COM(second_p) - COM(first_p), the difference of the centres of mass of its two velocity
    profiles (``centre_of_mass``). Under the null that the two profiles of a prompt are exchangeable (neither leads),
    each lag_p is as likely to have either sign, so p = (1 + #{|mean(s * lag)| >= |mean(lag)|}) / (1 + n_perm) over
    random signs s. Prompts where either velocity is zero throughout have no centre and are left out.
    """
    lags = centre_of_mass(np.asarray(second, np.float64)) - centre_of_mass(np.asarray(first, np.float64))
    lags = lags[np.isfinite(lags)]
    if not len(lags):
        return LeadLag(np.nan, np.nan, np.nan, np.nan, 0)
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_perm, len(lags)))
    observed = abs(lags.mean())
    null = np.abs(signs @ lags) / len(lags)
    p = (1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm)
    low, high = bootstrap_mean_ci(lags, n_boot=n_boot, seed=seed)
    return LeadLag(float(lags.mean()), float(low), float(high), float(p), len(lags))
