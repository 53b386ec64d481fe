"""Pooling a per-concept measure over an ensemble of prompt templates, with two separate uncertainties.

The same concepts are measured under T templates: values ``x[t, c]``. The pooled estimate is the grand mean
``mean_t mean_c x[t, c]``, which is also the mean over concepts of each concept's template mean
``xbar[c] = mean_t x[t, c]``. Its two uncertainties answer different questions and are reported side by side:

- **over concepts**: a percentile bootstrap of ``mean_c xbar[c]`` (concepts resampled, each with all its templates:
  the templates are paired through their concepts); how much the number depends on which concepts were drawn;
- **between templates**: the spread (standard deviation with ddof = 1, minimum, maximum) of the per-template means
  ``mean_c x[t, c]``; how much it depends on the template.

A finding "holds for every template" when it holds in each template's own analysis (``holds_in`` counts them).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from layerdrift.analyses.uncertainty import bootstrap_mean_ci


def pooled_mean(values: Float[np.ndarray, "templates n"], n_boot: int, seed: int) -> dict[str, float]:
    """The pooled mean of a per-concept measure over templates, its bootstrap CI over concepts and the spread of the
    per-template means (NaN concepts, e.g. at a point degenerate under one template, left out)."""
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values).any(axis=0)
    if not keep.any():
        return dict.fromkeys(("mean", "ci_low", "ci_high", "template_sd", "template_min", "template_max"), np.nan)
    values = values[:, keep]
    per_template, per_concept = values.mean(axis=1), values.mean(axis=0)
    low, high = bootstrap_mean_ci(per_concept, n_boot=n_boot, seed=seed)
    return {
        "mean": float(per_concept.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "template_sd": float(per_template.std(ddof=1)) if len(per_template) > 1 else 0.0,
        "template_min": float(per_template.min()),
        "template_max": float(per_template.max()),
    }


def holds_in(flags: np.ndarray | list[bool]) -> int:
    """In how many templates a finding holds."""
    return int(np.sum(np.asarray(flags, dtype=bool)))
