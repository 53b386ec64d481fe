"""The main job (extract + analyse + report) and the Python entry points for finished runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from layerdrift.workbench.analyze import Analysis, analyze_cached, check_analysis_inputs, load_analysis
from layerdrift.workbench.config import ExperimentConfig
from layerdrift.workbench.experiments import check_experiments, load_experiment_tables, run_experiments
from layerdrift.workbench.files import RunLock
from layerdrift.workbench.pipeline import extract, progress_bars
from layerdrift.workbench.report import REPORT, build_figures, experiment_frames, headline_frames, write_report
from layerdrift.workbench.results import remove_orphan_generations
from layerdrift.workbench.series import expand_series
from layerdrift.workbench.store import RunStore


@dataclass
class Run:
    """A finished run: the store, every result table as a DataFrame, every figure as a Plotly object."""

    store: RunStore
    analysis: Analysis
    notes: list[str]

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return self.analysis.tables

    @property
    def meta(self) -> dict:
        return self.analysis.meta

    @cached_property
    def figures(self) -> dict[str, go.Figure]:
        return build_figures(self.analysis)

    @property
    def report(self) -> Path:
        return self.store.root / REPORT / "index.html"


def open_run(path: str | Path) -> Run:
    """Open a run folder written by ``layerdrift run``: tables and figures, nothing recomputed."""
    store = RunStore.open(path)
    analysis = load_analysis(store)
    analysis.tables.update(load_experiment_tables(store))
    return Run(store, analysis, list(analysis.meta.get("warnings", [])))


def run(config: ExperimentConfig, out: str | Path | None = None, quiet: bool = False) -> Run:
    """Extraction (reusing the cache) + every analysis (cached when unchanged) + the report folder."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    check_analysis_inputs(config)
    config = expand_series(config, quiet, say)
    check_experiments(config)
    with RunLock(config.out_dir(out)):  # one writer per run folder
        store = extract(config, out=out, quiet=quiet, say=say)
        remove_orphan_generations(store.root)
        say("analyses")
        analysis = analyze_cached(store, config.analysis, config.seed, say)
        if config.patching or config.behaviour or config.manifold or config.series or config.trajectory:
            with progress_bars(quiet) as progress:
                analysis.tables.update(run_experiments(config, store, progress, say))
        say("report")
        _, notes = write_report(store, analysis, png=config.analysis.png)
    return Run(store, analysis, notes)


def print_headline(result: Run, top_n: int = 10) -> None:
    """The pair table, the category table and the top drifters, on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    frames = {**headline_frames(result.analysis, top_n), **experiment_frames(result.tables)}
    meta = result.meta
    titles = {
        "pairs": f"Variant pairs: cosine drift at layer {meta['headline_label']} "
        f"({len(meta['terms'])} concepts, 95% bootstrap CI)",
        "categories": "Categories: drift by pair (share = % of the top quartile / of the vocabulary; p "
        "= permutation test vs the rest)",
        "top": f"Top {top_n} drifters per pair",
        "patching": "Activation patching: normalised effect on logit(B) − logit(A) (0 = receiver "
        "unchanged, 1 = source's behaviour)",
        "behaviour": "Behaviour vectors: cosine between variants per block",
        "steering": "Steering check: shift in P(matching answer) with ± c × vector",
        "manifold": "Feature manifolds: cross-validated SMDS score (chance = permuted labels; Δ = "
        "change from the reference over every cell)",
        "trajectory": "Checkpoint series: largest drift from step 0 at the last checkpoint and the "
        "step that reached half of it; C = share of change in the first third of "
        "intervals (p vs random orderings)",
        "topology": "Topology between variants: Wasserstein-2 between H1 diagrams per residual point",
    }
    for key, frame in frames.items():
        if frame.empty:
            continue
        table = Table(title=titles[key], title_justify="left", header_style="bold")
        for col in frame.columns:
            table.add_column(col, justify="left" if frame[col].dtype == object else "right")
        for _, row in frame.iterrows():
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"report: {result.report}")
