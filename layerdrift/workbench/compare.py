"""Several finished runs side by side: their pair tables, category tables and depth curves in one report.

``compare_runs([a, b, ...])`` reads each run's drift tables and stacks them with a ``run`` column. What the runs
do not share is said once in ``notes`` and left out of the comparison, never silently mixed:

- different vocabularies: per-concept tables are not compared (each run's means are over its own concepts);
- different residual points (other depths, other architectures): depth curves are drawn at relative depth
  (0 = the embedding, 1 = the final norm) instead of by label;
- categories that not every run has: only the shared categories are compared.

``layerdrift compare RUN_A RUN_B ... --out DIR`` writes the comparison as a report folder.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from layerdrift.core.files import atomic_path
from layerdrift.dashboards.compare import category_bars, depth_curves, pair_bars
from layerdrift.dashboards.images import write_images
from layerdrift.dashboards.report import STYLE, figure_html, table_html, write_html_figures, write_tables
from layerdrift.errors import LayerdriftError
from layerdrift.workbench.api import Run, open_run


@dataclass
class Comparison:
    """Runs side by side: ``tables`` (pairs, categories, layers; a ``run`` column first), ``figures``, ``notes``."""

    names: list[str]
    runs: list[Run]
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    depth_axis: str = "label"  # or "relative_depth" when the runs' residual points differ

    @property
    def figures(self) -> dict[str, go.Figure]:
        t = self.tables
        figs = {"pair_drift": pair_bars(t["pairs"]), "drift_by_depth": depth_curves(t["layers"], self.depth_axis)}
        if len(t["categories"]):
            figs["category_drift"] = category_bars(t["categories"])
        return figs


def compare_runs(runs: Sequence[str | Path | Run], names: Sequence[str] | None = None) -> Comparison:
    """The drift tables of ``runs`` (folders, URLs or opened runs) side by side, named ``names`` (default: each
    run's config name); see the module docstring for what is compared when the runs differ."""
    opened = [r if isinstance(r, Run) else open_run(r) for r in runs]
    labels = list(names) if names is not None else [r.store.manifest["config"]["name"] for r in opened]
    if len(opened) < 2 or len(labels) != len(opened) or len(set(labels)) != len(labels):
        raise LayerdriftError(
            f"compare needs at least two runs, each with its own name (got {len(opened)} run(s) named "
            f"{', '.join(labels) or 'nothing'}); pass --names a,b,... when two runs share a config name."
        )
    out = Comparison(labels, opened)
    out.notes += vocabulary_notes(out)
    out.depth_axis = "label" if same_points(out) else "relative_depth"
    if out.depth_axis != "label":
        points = ", ".join(f"{n} ({len(r.meta['labels'])})" for n, r in zip(labels, opened))
        out.notes.append(
            f"the runs have different residual points ({points}): depth curves are drawn at relative depth "
            "(0 = the embedding, 1 = the final norm)."
        )
    shared = set.intersection(*(set(r.meta["categories"]) for r in opened))
    only = sorted(set().union(*(set(r.meta["categories"]) for r in opened)) - shared)
    if only:
        out.notes.append(f"categories {', '.join(only)} are not in every run and are left out of the category table.")
    out.tables = {
        "pairs": stacked(out, "pairs"),
        "categories": stacked(out, "categories").query("category in @shared").reset_index(drop=True),
        "layers": with_relative_depth(stacked(out, "layers")),
    }
    return out


def stacked(c: Comparison, table: str) -> pd.DataFrame:
    """One table of every run, with the run's name as the first column."""
    return pd.concat([r.tables[table].assign(run=n) for n, r in zip(c.names, c.runs)], ignore_index=True)[
        ["run", *c.runs[0].tables[table].columns]
    ]


def with_relative_depth(layers: pd.DataFrame) -> pd.DataFrame:
    """``relative_depth`` = point index / (points - 1) within each run and pair (0 = embedding, 1 = final norm)."""
    last = layers.groupby(["run", "pair"])["layer"].transform("max")
    return layers.assign(relative_depth=layers["layer"] / last.where(last > 0, 1), label=layers["label"].astype(str))


def same_points(c: Comparison) -> bool:
    return all(list(r.meta["labels"]) == list(c.runs[0].meta["labels"]) for r in c.runs)


def vocabulary_notes(c: Comparison) -> list[str]:
    """What differs between the runs' concepts, in one sentence, or nothing."""
    first = c.runs[0].meta["terms"]
    differ = [n for n, r in zip(c.names[1:], c.runs[1:]) if r.meta["terms"] != first]
    if not differ:
        return []
    shared = set.intersection(*(set(r.meta["terms"]) for r in c.runs))
    return [
        f"{', '.join(differ)} measured other concepts than {c.names[0]} ({len(shared)} shared): per-concept tables "
        "are not compared, and each run's means are over its own concepts."
    ]


def write_comparison(c: Comparison, out: str | Path, png: bool = True) -> list[str]:
    """The comparison as a report folder (index.html, tables/*.parquet|csv, figures/*.html|png) in one swap;
    returns notes to show."""
    folder, notes = Path(out), list(c.notes)
    figs = c.figures
    with atomic_path(folder) as tmp:
        write_tables(c.tables, tmp / "tables")
        write_html_figures(figs, tmp / "figures")
        note = write_images(figs, tmp / "figures") if png else None
        notes += [note] if note else []
        (tmp / "index.html").write_text(comparison_html(c, figs, png and note is None, notes), encoding="utf-8")
        (tmp / "comparison.json").write_text(json.dumps({"runs": dict(zip(c.names, map(str, run_roots(c))))}))
    return notes


def run_roots(c: Comparison) -> list[Any]:
    return [r.store.root for r in c.runs]


def comparison_html(c: Comparison, figs: dict[str, go.Figure], with_png: bool, notes: list[str]) -> str:
    """The comparison page: the runs, the notes, the pair table, the figures."""
    runs = "".join(
        f"<li><b>{html.escape(n)}</b>: {html.escape(str(root))}</li>" for n, root in zip(c.names, run_roots(c))
    )
    note_list = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    pairs = c.tables["pairs"][["run", "pair", "mean", "ci_low", "ci_high", "jaccard_mean", "floor"]]
    figures = "".join(figure_html(k, f, with_png) for k, f in figs.items())
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>layerdrift comparison</title><style>{STYLE}'
        f"</style></head><body><h1>layerdrift comparison</h1><ul>{runs}</ul>"
        f"{f'<h2>Notes</h2><ul class=note>{note_list}</ul>' if notes else ''}"
        f"<h2>Variant pairs at each run's headline layer</h2>"
        f"{table_html(pairs)}"
        f"<h2>Figures</h2>{figures}</body></html>"
    )
