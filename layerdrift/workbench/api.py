"""The Python entry points: ``run`` a config (extract, every experiment, the report) and ``open_run`` a finished one.

Both iterate the experiment registry; neither names an experiment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from layerdrift.core.files import RunLock
from layerdrift.core.hashing import fingerprint
from layerdrift.core.naming import parse_pair
from layerdrift.core.objectstore import RunPath
from layerdrift.core.progress import progress_bars
from layerdrift.dashboards.images import png_renderer
from layerdrift.dashboards.report import REPORT, write_report
from layerdrift.errors import LayerdriftError
from layerdrift.training.series import expand_series
from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.experiments import registry
from layerdrift.workbench.experiments.context import RunContext
from layerdrift.workbench.experiments.drift import RESULT_SET as DRIFT
from layerdrift.workbench.experiments.drift import TABLES as DRIFT_TABLES
from layerdrift.workbench.experiments.protocol import Experiment
from layerdrift.workbench.store.extract import engine_for, extract
from layerdrift.workbench.store.labelled import activation_array
from layerdrift.workbench.store.results import StoredResultSet, remove_orphan_generations, stored_result_sets
from layerdrift.workbench.store.runstore import RunStore

if TYPE_CHECKING:
    import xarray as xr


class _LazyMapping(Mapping):
    """A read-only mapping whose values are read on first access."""

    def __init__(self, readers: dict[str, Any]):
        self._readers = readers

    def __getitem__(self, key: str) -> Any:
        return self._readers[key]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)

    def __repr__(self) -> str:
        return f"<{len(self)} entries: {', '.join(self._readers)}>"


class Run:
    """A finished run, read lazily: ``tables`` (DataFrames), ``arrays`` (artifacts, ``EXPERIMENT/NAME``),
    ``figures`` (Plotly, by what they show), ``summaries()``, ``meta``, ``notes``, ``store`` and ``report``."""

    def __init__(self, store: RunStore, sets: dict[str, StoredResultSet]):
        self.store, self._sets = store, sets
        self.notes: list[str] = list(self.meta.get("warnings", []))

    @cached_property
    def results_key(self) -> str:
        """What the run's results are: every result set's fingerprint and file hashes, and the manifest but for the
        time of its last opening (a report made from the same key is the same report)."""
        sets = {name: {"fingerprint": s.fingerprint, "files": s.files} for name, s in self._sets.items()}
        manifest = {k: v for k, v in self.store.manifest.items() if k != "updated"}
        return fingerprint({"sets": sets, "manifest": manifest})

    @cached_property
    def experiments(self) -> list[Experiment]:
        """The registered experiments this run has results of, in run order."""
        return [e for e in registry.EXPERIMENTS if e.name in self._sets]

    @cached_property
    def tables(self) -> Mapping[str, pd.DataFrame]:
        readers = {}
        for e in self.experiments:
            stored = self._sets[e.name]
            for stem in stored.names("parquet"):
                readers[stem] = lambda stored=stored, stem=stem: stored.table(stem)
        return _LazyMapping(readers)

    @cached_property
    def arrays(self) -> Mapping[str, dict[str, np.ndarray]]:
        readers = {}
        for e in self.experiments:
            stored = self._sets[e.name]
            for stem in stored.names("npz"):
                readers[f"{e.name}/{stem}"] = lambda stored=stored, stem=stem: stored.arrays(stem)
        return _LazyMapping(readers)

    @property
    def meta(self) -> dict[str, Any]:
        """What the drift analyses record about the run: terms, categories, pairs, point labels, headline layer."""
        return self._sets[DRIFT].meta

    def meta_of(self, experiment: str) -> dict[str, Any]:
        """What one experiment recorded about its results (its notes, settings), e.g. ``run.meta_of("lens")``."""
        return self._sets[experiment].meta

    @cached_property
    def figures_by_experiment(self) -> dict[str, dict[str, go.Figure]]:
        """Each experiment's report figures by key, in run order."""
        return {e.name: e.figures(self) for e in self.experiments}

    @property
    def figures(self) -> dict[str, go.Figure]:
        return {key: fig for figs in self.figures_by_experiment.values() for key, fig in figs.items()}

    def summaries_of(self, experiment: Experiment, top_n: int = 10) -> dict[str, pd.DataFrame]:
        """One experiment's short tables by title."""
        return experiment.summaries(self, top_n) if experiment.name == DRIFT else experiment.summaries(self)

    def summaries(self, top_n: int = 10) -> dict[str, pd.DataFrame]:
        """Every experiment's short tables by title (the terminal and the report show the same ones)."""
        return {title: frame for e in self.experiments for title, frame in self.summaries_of(e, top_n).items()}

    def findings(self) -> list[str]:
        """Every experiment's findings as sentences, each with its statistic and its baseline (the report and the
        terminal open with them)."""
        return [f for e in self.experiments for f in e.findings(self)]

    def pair(self, a: str, b: str | None = None) -> str:
        """The label the tables use for a pair: ``run.pair("reference", "nf4")`` or ``run.pair("reference->nf4")``."""
        label = parse_pair((a, b) if b is not None else a)
        known = [p["label"] for p in self.meta["pairs"]]
        if label not in known:
            raise LayerdriftError(f"pair {label!r} is not one of this run's pairs {known}.")
        return label

    def activations(
        self, variant: str, prompt_set: str | None = None, position: str = "last", points: list[str] | None = None
    ) -> xr.DataArray:
        """A variant's captured activations as a lazy ``xarray.DataArray`` (prompt x point x d_model, with terms,
        categories, hook names and labels as coordinates); selecting a point reads that point's array only:
        ``run.activations("nf4").sel(point="blocks.20.hook_resid_post")``. See ``layerdrift.workbench.store.labelled``.
        """
        return activation_array(self.store, variant, prompt_set, position, points)

    @property
    def report(self) -> RunPath:
        return self.store.root / REPORT / "index.html"


def open_run(path: str | RunPath) -> Run:
    """Open a run folder written by ``layerdrift run`` (a path or an fsspec URL such as ``s3://bucket/runs/x``);
    tables are read when first used, nothing is recomputed."""
    store = RunStore.open(path)
    sets = stored_result_sets(store.root)
    drift = sets.get(DRIFT) or StoredResultSet(store.root, DRIFT)  # no analyses: one clear sentence
    missing = [t for t in DRIFT_TABLES if t not in drift.names("parquet")]
    if missing:
        raise LayerdriftError(
            f"the analysis results of run {str(store.root)!r} lack table {missing[0]!r}; run "
            f"`layerdrift run` again with its config and --out {str(store.root)!r}."
        )
    return Run(store, sets)


def run(config: ExperimentConfig, out: str | Path | None = None, quiet: bool = False) -> Run:
    """Extraction (reusing the cache), every experiment the config asks for (cached when unchanged), the report."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    with RunLock(config.out_dir(out)), engine_for(config) as engine:  # one writer per run folder
        if engine.name != "local":
            say(f"engine: {engine.name} ({engine.where})")
        config = expand_series(config, quiet, say, engine)
        registry.check_experiments(config)
        store = extract(config, out=out, quiet=quiet, say=say, engine=engine)
        remove_orphan_generations(store.root)
        say("analyses")
        with progress_bars(quiet) as progress, png_renderer() as renderer:
            # an experiment that computes changes the report: Chromium starts for its PNGs while they compute
            starts = renderer.start if config.analysis.png else lambda: None
            registry.run_experiments(RunContext(config, store, progress, say, engine, starts))
            result = open_run(store.root)
            say("report")
            result.notes += write_report(result, ("png",) if config.analysis.png else (), renderer=renderer)
    say("done")
    return result


def print_headline(result: Run, top_n: int = 10, report: Any = None) -> None:
    """Every experiment's summary tables, the notes, and where the report is (``report``, by default the run's own),
    on the terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=160)
    findings = result.findings()
    if findings:
        console.print("[bold]Findings[/bold]")
    for finding in findings:
        console.print(f"- {finding}", markup=False, highlight=False)
    for title, frame in result.summaries(top_n).items():
        if frame.empty:
            continue
        table = Table(title=title, title_justify="left", header_style="bold")
        for col in frame.columns:
            table.add_column(escape(col), justify="left" if frame[col].dtype == object else "right")
        for _, row in frame.iterrows():
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else escape(str(v)) for v in row])
        console.print(table)
    for note in result.notes:
        console.print("[yellow]note:[/yellow]", escape(note))
    console.print(f"report: {report or result.report}")
