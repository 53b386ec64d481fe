"""Every experiment, in run order. The pipeline, the report, ``open_run`` and the dashboard iterate over this list.

Adding an experiment: its modules (``analyses/``, ``workbench/experiments/NAME.py``, ``dashboards/NAME.py``),
one line here, and its settings field in ``workbench/config.py`` (see CONTRIBUTING.md).
"""

from __future__ import annotations

from layerdrift.dashboards import behaviour as behaviour_views
from layerdrift.dashboards import drift as drift_views
from layerdrift.dashboards import lens as lens_views
from layerdrift.dashboards import manifold as manifold_views
from layerdrift.dashboards import patching as patching_views
from layerdrift.dashboards import templates as templates_views
from layerdrift.dashboards import trajectory as trajectory_views
from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.experiments import behaviour, drift, lens, manifold, patching, templates, trajectory
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.protocol import Experiment
from layerdrift.workbench.store.results import ResultSet

EXPERIMENTS: tuple[Experiment, ...] = (
    drift.EXPERIMENT.with_views(drift_views),
    templates.EXPERIMENT.with_views(templates_views),
    patching.EXPERIMENT.with_views(patching_views),
    behaviour.EXPERIMENT.with_views(behaviour_views),
    manifold.EXPERIMENT.with_views(manifold_views),
    trajectory.EXPERIMENT.with_views(trajectory_views),
    lens.EXPERIMENT.with_views(lens_views),
)


def experiment_named(name: str) -> Experiment:
    """The registered experiment whose result set is ``name``."""
    return next(e for e in EXPERIMENTS if e.name == name)


def experiment_of(runner: object) -> Experiment:
    """The registered experiment whose runner this is."""
    return next(e for e in EXPERIMENTS if e.runner is type(runner))


def asked_for(config: ExperimentConfig) -> list[Experiment]:
    """The experiments a config asks for, in run order."""
    return [e for e in EXPERIMENTS if e.asked_for(config)]


def check_experiments(config: ExperimentConfig) -> None:
    """Every asked-for experiment checks its settings and data sets before anything is captured."""
    for experiment in asked_for(config):
        experiment.check(config)


def run_experiments(ctx: RunContext) -> dict[str, ResultSet]:
    """Run (or reuse from the cache) every experiment the config asks for; their result sets by name."""
    return {e.name: ctx.results(e) for e in asked_for(ctx.config)}
