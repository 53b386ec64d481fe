"""The shape every experiment has: settings, a runner, tables and artifacts, summaries, figures and a dashboard tab.

An experiment is a plain ``Experiment`` record; the registry lists them in run order and the pipeline, the
report, ``open_run`` and the dashboard shell iterate over it without naming one. The runner is ordinary
code: it gets a ``RunContext`` (models, captures, progress) and returns an ``Output``; the context caches
that output as one result set under the runner's fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from layerdrift.workbench.api import Run as RunResults
    from layerdrift.workbench.config import ExperimentConfig
    from layerdrift.workbench.experiments.context import RunContext


@dataclass
class Output:
    """What a runner produced: its tables, its named arrays (artifacts) and a small JSON-able meta record."""

    tables: dict[str, pd.DataFrame]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """One experiment on one run: ``key`` fingerprints everything its results depend on."""

    key: str

    def run(self) -> Output: ...


def _no_figures(results: RunResults) -> dict[str, go.Figure]:
    return {}


def _no_tabs(results: RunResults, selection: Any) -> list[tuple[str, Any]]:
    return []


def _no_summaries(results: RunResults) -> dict[str, pd.DataFrame]:
    return {}


def _no_findings(results: RunResults) -> list[str]:
    return []


def _no_check(config: ExperimentConfig) -> None:
    return None


@dataclass(frozen=True)
class Experiment:
    """One experiment, from its config settings to its dashboard tab.

    name        result set in ``RUN/results`` (and the key of its cache)
    version     bumped when its tables change meaning: older caches are then recomputed
    settings    the config's settings for it, or None when the config does not ask for it
    runner      builds the runner from a run context (after ``check`` passed and captures exist)
    tables      the tables it writes; artifacts: its named arrays (e.g. manifold projections)
    summaries   short tables by title, for the terminal and the report alike
    findings    the results as short sentences, each with its statistic and the baseline it is read against
    figures     report figures by a key that says what they show; tabs: dashboard tabs (title, Panel object) of a run
                and the session's ``dashboards.selection.Selection``
    """

    name: str
    version: str
    settings: Callable[[ExperimentConfig], Any | None]
    runner: Callable[[RunContext], Runner]
    tables: tuple[str, ...]
    artifacts: tuple[str, ...] = ()
    check: Callable[[ExperimentConfig], None] = _no_check
    summaries: Callable[[RunResults], dict[str, pd.DataFrame]] = _no_summaries
    findings: Callable[[RunResults], list[str]] = _no_findings
    figures: Callable[[RunResults], dict[str, go.Figure]] = _no_figures
    tabs: Callable[[RunResults, Any], list[tuple[str, Any]]] = _no_tabs

    def asked_for(self, config: ExperimentConfig) -> bool:
        return self.settings(config) is not None

    def with_views(self, views: Any) -> Experiment:
        """This experiment with the figures and tabs of a dashboards module (``figures``, ``tabs``)."""
        return replace(self, figures=views.figures, tabs=views.tabs)
