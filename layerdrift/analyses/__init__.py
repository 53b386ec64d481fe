"""Pure analyses: arrays in, arrays/tables out; deterministic given a seed; no I/O, no printing."""

from layerdrift.analyses.drift import cosine_drift, drift_by_layer, l2_normalize, percentile_rank
from layerdrift.analyses.neighbours import knn_indices, knn_jaccard, neighbour_list
from layerdrift.analyses.similarity import cka_matrix, linear_cka
from layerdrift.analyses.spectrum import effective_ranks

__all__ = [
    "cka_matrix",
    "cosine_drift",
    "drift_by_layer",
    "effective_ranks",
    "knn_indices",
    "knn_jaccard",
    "l2_normalize",
    "linear_cka",
    "neighbour_list",
    "percentile_rank",
]
