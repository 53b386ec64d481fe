"""The pair metrics: how two variants' representations of the same concepts differ, at every residual point.

``PAIR_METRICS`` is the registry the drift experiment's layer table, its depth figures and the dashboard
read: adding a metric is one entry here (a function of a ``PairStacks`` and how to read its values), and it
appears as columns of the ``layers`` table and as a depth curve. A per-concept metric gives one value per
(point, concept) and is summarised per point by its ``stats`` (mean, std, median, a bootstrap CI of the
mean); a per-point metric gives one value per point.

- ``drift``: cosine drift 1 - cos(a_i, b_i) per concept (after orthogonal Procrustes when widths differ
  and alignment is asked for), the seed study's main measure.
- ``jaccard``: overlap of each concept's k cosine nearest neighbours, |N_a ∩ N_b| / |N_a ∪ N_b|.
- ``cka`` / ``cka_debiased``: linear CKA of the two point clouds (Kornblith et al. 2019), and its
  unbiased-HSIC form (Song et al. 2012; Nguyen et al. 2021), which is not inflated at small n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from jaxtyping import Float

from layerdrift.analyses.drift import drift_by_layer, procrustes_align
from layerdrift.analyses.neighbours import knn_jaccard
from layerdrift.analyses.uncertainty import bootstrap_mean_ci

STATS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean,
    "std": lambda x: np.std(x, ddof=1),
    "median": np.median,
}
Values = Float[np.ndarray, "points n"] | Float[np.ndarray, " points"]


@dataclass(frozen=True)
class PairStacks:
    """Two variants' residual points (same depth, same concepts) and what several metrics share."""

    a: Float[np.ndarray, "points n da"]
    b: Float[np.ndarray, "points n db"]
    cka: tuple[Float[np.ndarray, " points"], Float[np.ndarray, " points"]]  # (biased, debiased) CKA(a[i], b[i])
    k: int  # neighbours for the Jaccard overlap
    align: bool  # whether drift may align different widths by Procrustes

    @property
    def same_width(self) -> bool:
        return self.a.shape[2] == self.b.shape[2]


@dataclass(frozen=True)
class PairMetric:
    """One way two variants differ. ``values`` returns None where the metric does not apply to the pair."""

    name: str  # the column stem in the layers table: drift -> drift_mean, drift_ci_low, ...
    title: str  # title of its depth figure; may name analysis settings, e.g. {k}
    axis: str  # y-axis title of its depth figure
    values: Callable[[PairStacks], Values | None]
    per_concept: bool
    more_change: Literal["higher", "lower"]  # which direction means the pair differs more
    stats: tuple[str, ...] = ("mean", "ci")  # per-concept summaries, each a column or two (ci_low, ci_high)
    log: bool = False  # drawn on a log axis
    drawn_with: str | None = None  # drawn dotted in that metric's figure instead of a figure of its own
    needs_spread: bool = True  # undefined (NaN) where the prompts' vectors do not vary (see analyses.degenerate)

    @property
    def column(self) -> str:
        """The layers-table column of its depth curve."""
        return f"{self.name}_mean" if self.per_concept else self.name

    def summary(self, values: Values, n_boot: int, seed: int) -> dict[str, list[float]]:
        """The layers-table columns of this metric, one value per point (the bootstrap is over concepts)."""
        if not self.per_concept:
            return {self.name: [float(v) for v in values]}
        out: dict[str, list[float]] = {}
        for stat in self.stats:
            if stat == "ci":
                low, high = bootstrap_mean_ci(values.T, n_boot=n_boot, seed=seed)
                out[f"{self.name}_ci_low"], out[f"{self.name}_ci_high"] = low.tolist(), high.tolist()
            else:
                out[f"{self.name}_{stat}"] = [float(STATS[stat](row)) for row in values]
        return out


def cosine_drift(p: PairStacks) -> Float[np.ndarray, "points n"] | None:
    if p.same_width:
        return drift_by_layer(p.a, p.b)
    if not p.align:
        return None
    return drift_by_layer(np.stack([procrustes_align(x, y) for x, y in zip(p.a, p.b)]), p.b)


def neighbour_jaccard(p: PairStacks) -> Float[np.ndarray, "points n"]:
    return np.stack([knn_jaccard(x, y, p.k) for x, y in zip(p.a, p.b)])


DRIFT = PairMetric(
    "drift",
    "Mean cosine drift per layer (95% bootstrap band; dashed = noise floor)",
    "mean cosine drift (log)",
    cosine_drift,
    per_concept=True,
    more_change="higher",
    stats=("mean", "std", "median", "ci"),
    log=True,
)
JACCARD = PairMetric(
    "jaccard",
    "k-NN Jaccard overlap per layer (k = {k}, 95% band)",
    "mean Jaccard",
    neighbour_jaccard,
    per_concept=True,
    more_change="lower",
)
CKA = PairMetric(
    "cka",
    "Same-layer linear CKA between variants (dotted: debiased)",
    "CKA",
    lambda p: p.cka[0],
    per_concept=False,
    more_change="lower",
)
CKA_DEBIASED = PairMetric(
    "cka_debiased",
    "Same-layer debiased CKA between variants",
    "debiased CKA",
    lambda p: p.cka[1],
    per_concept=False,
    more_change="lower",
    drawn_with="cka",
)

# in the order of the layers table's columns and of the depth figures: the main measure first
PAIR_METRICS: tuple[PairMetric, ...] = (DRIFT, JACCARD, CKA, CKA_DEBIASED)
