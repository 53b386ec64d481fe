"""Experiments beyond the headline analyses (patching, behaviour vectors, manifold probes, trajectories + topology),
cached
as result tables.

Unlike the headline analyses, most run forward passes (trajectories read the captures). Each experiment's tables (and
arrays) are one result set in ``RUN/results`` under the fingerprint it was made with, so an unchanged config reuses
them, a changed one recomputes only what changed, and a kill mid-save never mixes two configs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.results import ResultSet, cached_result_set, has_result_set, read_result_set, save_result_set
from layerdrift.workbench.store import RunStore

EXPERIMENT_TABLES = {
    "patching": ("patching", "patching_prompts"),
    "behaviour": ("behaviour_vectors", "behaviour_cosine", "behaviour_cross", "behaviour_pca", "behaviour_steering"),
    "manifold": ("manifold_scores", "manifold_similarity"),
    "trajectory": (
        "trajectory",
        "concentration",
        "velocity_band",
        "topology",
        "topology_distances",
        "persistence_diagrams",
        "trajectory_projection",
    ),
}
OPTIONAL_TABLES = tuple(t for tables in EXPERIMENT_TABLES.values() for t in tables)
VERSIONS = {
    "patching": "1",
    "behaviour": "1",
    "manifold": "1",
    "trajectory": "3",
}  # bump one when its tables change meaning: older caches are recomputed


def check_experiments(config: ExperimentConfig) -> None:
    """Load and check the experiments' data sets and variant choices before any capture is written."""
    from layerdrift.concepts.patch_prompts import load_patch_prompts
    from layerdrift.workbench.behaviour_run import behaviour_sets
    from layerdrift.workbench.manifold_run import manifold_sets
    from layerdrift.workbench.patching_run import patching_variants

    if config.patching is not None:
        load_patch_prompts(config.patching.prompts)
        patching_variants(config)
    if config.behaviour is not None:
        behaviour_sets(config.behaviour)
    if config.manifold is not None:
        manifold_sets(config.manifold, config.seed)


def run_experiments(
    config: ExperimentConfig, store: RunStore, progress: Any = None, say: Callable[[str], None] = lambda m: None
) -> dict[str, pd.DataFrame]:
    """Run (or reuse) the patching, behaviour and manifold experiments a config asks for; returns their tables."""
    from layerdrift.workbench.behaviour_run import BehaviourRun
    from layerdrift.workbench.manifold_run import ManifoldRun
    from layerdrift.workbench.patching_run import PatchingRun
    from layerdrift.workbench.trajectory_run import TrajectoryRun

    tables: dict[str, pd.DataFrame] = {}
    trajectory = config.trajectory if config.trajectory is not None else (True if config.series else None)
    runners = (
        ("patching", config.patching, PatchingRun),
        ("behaviour", config.behaviour, BehaviourRun),
        ("manifold", config.manifold, ManifoldRun),
        ("trajectory", trajectory, TrajectoryRun),
    )
    for experiment, spec, runner in runners:
        if spec is None:
            continue
        job = runner(config, store)
        key = f"{VERSIONS[experiment]}:{job.key}"
        cached = cached_result_set(store.root, experiment, key)
        if cached is None:
            produced = job.run(progress, say)  # tables (DataFrames) and named arrays (dicts of ndarrays)
            cached = ResultSet(
                experiment,
                key,
                {k: v for k, v in produced.items() if isinstance(v, pd.DataFrame)},
                arrays={k: v for k, v in produced.items() if isinstance(v, dict)},
            )
            save_result_set(store.root, cached)
        tables.update(cached.tables)
    return tables


def load_experiment_tables(store: RunStore) -> dict[str, pd.DataFrame]:
    """Whatever experiment tables a finished run has (none is fine: they are optional; a damaged set is an error)."""
    found = {}
    for experiment in EXPERIMENT_TABLES:
        if has_result_set(store.root, experiment):
            found.update(read_result_set(store.root, experiment).tables)
    return found
