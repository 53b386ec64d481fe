"""The report folder of a run: tables (Parquet + CSV), figures (HTML + PNG) and index.html."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from layerdrift.core.files import atomic_path, read_json_or_none
from layerdrift.core.hashing import bytes_sha256, fingerprint
from layerdrift.core.objectstore import RunPath, run_location
from layerdrift.core.spreadsheet import to_csv
from layerdrift.dashboards.images import PngRenderer, write_images
from layerdrift.dashboards.paper import FORMATS, STYLES, latex_table, slug
from layerdrift.dashboards.reading import SECTIONS, how_to_read
from layerdrift.errors import LayerdriftError

REPORT = "report"
STAMP = "report.json"  # in the report folder: what it was made from, and the hash of every file in it


def figure_code() -> str:
    """The fingerprint of the code that draws reports (this package's dashboards and plotly's version)."""
    import plotly

    sources = sorted(Path(__file__).parent.glob("*.py"))
    return fingerprint({"plotly": plotly.__version__, **{p.name: bytes_sha256(p.read_bytes()) for p in sources}})


def files_of(folder: Any) -> dict[str, str]:
    """sha256 of every file under a report folder, by its path in the folder (the stamp left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel != STAMP and path.is_file():
            out[rel] = bytes_sha256(path.read_bytes())
    return out


def up_to_date(folder: Any, key: str) -> list[str] | None:
    """The notes of the report in ``folder`` when it was made from ``key`` and every file is there, unchanged;
    else None (it is written again)."""
    stamp = read_json_or_none(folder / STAMP) if folder.exists() else None
    if not isinstance(stamp, dict) or stamp.get("key") != key or not isinstance(stamp.get("files"), dict):
        return None
    for rel, sha in stamp["files"].items():
        path = folder / rel
        if not path.is_file() or bytes_sha256(path.read_bytes()) != sha:
            return None
    return list(stamp.get("notes", []))


def write_tables(tables: Any, folder: Path) -> None:
    """Every table as ``NAME.parquet`` (exact) and ``NAME.csv`` (safe to open in a spreadsheet)."""
    folder.mkdir(parents=True)
    for name, table in tables.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
        to_csv(table, folder / f"{name}.csv")


def write_latex_tables(run: Any, folder: Path) -> None:
    """Every summary table as ``folder/NAME.tex`` (booktabs, CIs in brackets) and ``folder/tables.tex`` that
    inputs them all, in report order."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    names = []
    for title, frame in run.summaries().items():
        if frame.empty:
            continue
        name = slug(title, taken)
        (folder / f"{name}.tex").write_text(latex_table(title, frame, name), encoding="utf-8")
        names.append(name)
    (folder / "tables.tex").write_text("".join(f"\\input{{{n}}}\n" for n in names), encoding="utf-8")


def write_html_figures(figs: dict[str, go.Figure], folder: Path) -> None:
    """HTML for each figure, plotly.js written once beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory", full_html=True)


def table_html(df: pd.DataFrame, floats: int = 4) -> str:
    """A table as escaped HTML, numbers to ``floats`` significant digits."""
    return df.to_html(index=False, float_format=lambda x: f"{x:.{floats}g}", border=0, classes="t", escape=True)


def write_report(
    run: Any,
    formats: Sequence[str] = ("png",),
    folder: str | RunPath | None = None,
    renderer: PngRenderer | None = None,
    style: str | None = None,
) -> list[str]:
    """Write the report folder (tables/*.parquet|csv, latex/*.tex, figures/*.html and each of ``formats``,
    index.html) in one swap, by default RUN/report, or ``folder`` (a path or an fsspec URL: a remote run's report can
    be written here); the images with ``renderer`` when given, at a paper ``style``'s size (``STYLES``) when given;
    returns notes to show."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or (style is not None and style not in STYLES):
        what = f"figure format {unknown[0]!r}" if unknown else f"figure style {style!r}"
        raise LayerdriftError(f"{what} is not one of {', '.join(FORMATS if unknown else STYLES)}.")
    folder = run.store.root / REPORT if folder is None else run_location(folder)
    key = fingerprint({"results": run.results_key, "formats": sorted(formats), "style": style, "code": figure_code()})
    done = up_to_date(folder, key)
    if done is not None:  # made from these results by this code, every file intact: nothing to redo
        return done
    notes: list[str] = []
    with atomic_path(folder) as tmp, ThreadPoolExecutor(max_workers=1) as background:
        # Chromium renders the PNGs on another core while the tables and the HTML are written here
        paper = STYLES.get(style or "")
        images = background.submit(write_images, run.figures, tmp / "figures", formats, renderer, paper)
        write_tables(run.tables, tmp / "tables")
        write_latex_tables(run, tmp / "latex")
        write_html_figures(run.figures, tmp / "figures")
        note = images.result()
        if note:
            notes.append(note)
        page = index_html(run, "png" in formats and note is None, [*run.notes, *notes])
        (tmp / "index.html").write_text(page, encoding="utf-8")
        stamp = {"key": key, "notes": notes, "files": files_of(tmp)}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    return notes


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table.t{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
table.t td,table.t th{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}
table.t th{background:#f3f3f3} figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-weight:600;margin-bottom:4px} pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
.note{color:#a40} p.read{color:#555;margin:2px 0 0;font-size:14px}
nav.toc{background:#f7f7f7;padding:0.6em 1em;margin:1em 0} nav.toc a{margin-right:1.2em}"""


def figure_html(name: str, fig: Any, with_png: bool) -> str:
    title = html.escape(fig.layout.title.text or name)
    body = f'<img src="figures/{name}.png" alt="{title}" loading="lazy">' if with_png else ""
    read = how_to_read(name)
    line = f'<p class="read">{html.escape(read)}</p>' if read else ""
    return (
        f'<figure id="fig-{html.escape(name)}"><figcaption>{title} — <a href="figures/{name}.html">interactive</a>'
        f"</figcaption>{body}{line}</figure>"
    )


def _experiment_html(run: Any, experiment: Any, with_png: bool) -> str:
    """One experiment's section body: its summary tables, then its figures, each with how to read it."""
    tables = "".join(
        f"<h3>{html.escape(t)}</h3>{table_html(f, 3)}" for t, f in run.summaries_of(experiment).items() if not f.empty
    )
    figs = run.figures_by_experiment.get(experiment.name, {})
    return tables + "".join(figure_html(k, fig, with_png) for k, fig in figs.items())


def _provenance(run: Any) -> str:
    m, meta = run.store.manifest, run.meta
    keys = ("source", "quantization", "dtype", "device", "n_layers", "d_model", "gguf_sha256")
    variants = pd.DataFrame(
        [{"variant": v, **{k: m["variants"].get(v, {}).get(k) for k in keys}} for v in run.store.variants]
    )
    record = html.escape(
        json.dumps({"packages": m["packages"], "platform": m["platform"], "config": m["config"]}, indent=1)
    )
    return (
        f"{table_html(variants)}<p>config hash <code>{m['config_hash']}</code>; "
        f"created {m['created']}, updated {m['updated']}; seed {meta['seed']}.</p><pre>{record}</pre>"
    )


def index_html(run: Any, with_png: bool, notes: list[str]) -> str:
    """The report page: a table of contents, the run in one paragraph, the findings and notes first, then one section
    per experiment (its summary tables, then its figures with a line on how to read each), the provenance."""
    m, meta = run.store.manifest, run.meta
    name = html.escape(m["config"]["name"])
    intro = (
        f"<p>Reference <b>{html.escape(meta['reference'])}</b>; prompt set <b>{html.escape(meta['prompt_set'])}</b> "
        f"({len(meta['terms'])} concepts); headline layer <b>{html.escape(str(meta['headline_label']))}</b> "
        f"(residual point {meta['headline_layer']}); "
        f"noise floor: {html.escape(', '.join(meta['noise_floor']) or 'none')}. "
        "Drift = 1 − cos of L2-normalised last-token vectors; CIs are 95% bootstrap intervals over concepts "
        f"({meta['spec']['n_boot']} resamples).</p>"
    )
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in run.findings())
    sections = [("findings", "Findings", f'<ul class="findings">{findings}</ul>')] if findings else []
    if notes:
        sections.append(
            ("notes", "Notes", f'<ul class="note">{"".join(f"<li>{html.escape(n)}</li>" for n in notes)}</ul>')
        )
    for e in run.experiments:
        body = _experiment_html(run, e, with_png)
        if body:
            sections.append((e.name, SECTIONS.get(e.name, e.name), body))
    sections.append(("provenance", "Provenance", _provenance(run)))
    toc = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>{b}</section>' for key, title, b in sections)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>layerdrift report: {name}</title>'
        f'<style>{STYLE}</style></head><body><h1>layerdrift report: {name}</h1>{intro}<nav class="toc">{toc}</nav>'
        f"{body}</body></html>"
    )
