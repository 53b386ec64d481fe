"""Experiments beyond the headline analyses (patching, behaviour vectors, manifold probes, trajectories + topology), cached as result tables.

Unlike the headline analyses, most run forward passes (trajectories read the captures); their tables join the others in ``RUN/results``
(Parquet), and ``RUN/results/experiments.json`` records the fingerprint each was made under, so
an unchanged config reuses them and a changed one recomputes only what changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from layerdrift.workbench.analyze import results_dir
from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.store import RunStore, write_json_atomic

EXPERIMENT_TABLES = {
    "patching": ("patching", "patching_prompts"),
    "behaviour": ("behaviour_vectors", "behaviour_cosine", "behaviour_cross", "behaviour_pca", "behaviour_steering"),
    "manifold": ("manifold_scores", "manifold_similarity"),
    "trajectory": ("trajectory", "concentration", "velocity_band", "topology", "topology_distances", "persistence_diagrams", "trajectory_projection"),
}
OPTIONAL_TABLES = tuple(t for tables in EXPERIMENT_TABLES.values() for t in tables)
RECORD = "experiments.json"
VERSIONS = {"patching": "1", "behaviour": "1", "manifold": "1", "trajectory": "3"}  # bump one when its tables change meaning: older caches are recomputed


def _record(store: RunStore) -> dict[str, Any]:
    try:
        return json.loads((results_dir(store) / RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _load(store: RunStore, names: tuple[str, ...]) -> dict[str, pd.DataFrame] | None:
    try:
        return {n: pd.read_parquet(results_dir(store) / f"{n}.parquet") for n in names}
    except Exception:  # noqa: BLE001 - any damage means: recompute
        return None


def _save(store: RunStore, experiment: str, key: str, tables: dict[str, pd.DataFrame]) -> None:
    out = results_dir(store)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        tmp = out / f".{name}.parquet.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(out / f"{name}.parquet")
    record = _record(store)
    record[experiment] = key
    write_json_atomic(out / RECORD, record)


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


def run_experiments(config: ExperimentConfig, store: RunStore, progress: Any = None, say: Callable[[str], None] = lambda m: None) -> dict[str, pd.DataFrame]:
    """Run (or reuse) the patching, behaviour and manifold experiments a config asks for; returns their tables."""
    from layerdrift.workbench.behaviour_run import BehaviourRun
    from layerdrift.workbench.manifold_run import ManifoldRun
    from layerdrift.workbench.patching_run import PatchingRun
    from layerdrift.workbench.trajectory_run import TrajectoryRun

    tables: dict[str, pd.DataFrame] = {}
    trajectory = config.trajectory if config.trajectory is not None else (True if config.series else None)
    runners = (("patching", config.patching, PatchingRun), ("behaviour", config.behaviour, BehaviourRun), ("manifold", config.manifold, ManifoldRun),
               ("trajectory", trajectory, TrajectoryRun))
    for experiment, spec, runner in runners:
        if spec is None:
            continue
        job = runner(config, store)
        key = f"{VERSIONS[experiment]}:{job.key}"
        cached = _load(store, EXPERIMENT_TABLES[experiment]) if _record(store).get(experiment) == key else None
        if cached is None:
            cached = job.run(progress, say)
            _save(store, experiment, key, cached)
        tables.update(cached)
    return tables


def load_experiment_tables(store: RunStore) -> dict[str, pd.DataFrame]:
    """Whatever experiment tables a finished run has (none is an error: they are optional)."""
    found = {}
    for experiment, names in EXPERIMENT_TABLES.items():
        if experiment in _record(store):
            tables = _load(store, names)
            if tables is not None:
                found.update(tables)
    return found
