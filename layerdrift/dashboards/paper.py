"""Outputs that go straight into a paper: figures sized for a column, and the summary tables as LaTeX.

- Figure styles: ``one-column`` (3.25 in wide, 8 pt text) and ``two-column`` (6.75 in, 9 pt), the common widths
  of a two-column conference template's column and full text block. A styled figure keeps its aspect ratio, with
  1 in = 96 px (what Chromium prints a PDF or an SVG at).
- Tables: ``booktabs`` (``\\toprule``, ``\\midrule``, ``\\bottomrule``), an estimate and its 95% interval in one
  cell as ``0.0387 [0.0370, 0.0406]``, numbers to three significant digits (very small or large ones as
  ``$1.01 \\times 10^{-4}$``), every text cell escaped (``_ % & # $ { } ~ ^ \\``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

FORMATS = ("png", "svg", "pdf")
PX_PER_INCH = 96
CI_SUFFIX = " [95% CI]"


@dataclass(frozen=True)
class PaperStyle:
    """A figure's width (inches) and text size (points) for one place in a paper."""

    width_in: float
    font_pt: float


STYLES = {"one-column": PaperStyle(3.25, 8), "two-column": PaperStyle(6.75, 9)}


def styled(fig: go.Figure, style: PaperStyle | None) -> go.Figure:
    """A copy of ``fig`` at the style's width (its own aspect ratio kept) and text size, with tight margins."""
    if style is None:
        return fig
    width = round(style.width_in * PX_PER_INCH)
    aspect = (fig.layout.height or 500) / (fig.layout.width or 1000)
    font_px = style.font_pt * PX_PER_INCH / 72
    out = go.Figure(fig)
    out.update_layout(
        width=width,
        height=round(width * aspect),
        font={"size": font_px},
        title={"font": {"size": font_px * 1.15}},
        margin={"l": 40, "r": 10, "t": 40, "b": 36},
    )
    out.update_annotations(font_size=font_px)
    return out


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "→": r"$\rightarrow$",  # pair labels; not set up for pdfLaTeX's default UTF-8
    "−": r"$-$",
}
LATEX_ESCAPE = re.compile("|".join(re.escape(c) for c in LATEX_SPECIALS))


def latex_escape(text: str) -> str:
    """Text as LaTeX typesets it literally."""
    return LATEX_ESCAPE.sub(lambda m: LATEX_SPECIALS[m.group()], text)


def latex_number(x: float, digits: int = 3) -> str:
    """Three significant digits, trailing zeros kept (0.0370); beyond 1e-3..1e4 as $m \\times 10^{e}$."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    if x != 0 and not 1e-3 <= abs(x) < 1e4:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"${mantissa} \\times 10^{{{int(exponent)}}}$"
    return f"{x:#.{digits}g}".rstrip(".")


def interval_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Each estimate and its CI in one text column: ``mean`` with ``ci_low``/``ci_high`` becomes
    ``mean [95% CI]``, and ``X`` (or ``X_mean``) with ``X_ci_low``/``X_ci_high`` becomes ``X [95% CI]``."""
    out = frame.copy()
    for low in [c for c in frame.columns if c == "ci_low" or c.endswith("_ci_low")]:
        stem = low[: -len("ci_low")].rstrip("_")
        high = f"{stem}_ci_high" if stem else "ci_high"
        estimate = next((c for c in (stem, f"{stem}_mean") if c in frame.columns), None) if stem else "mean"
        if high not in frame.columns or estimate not in frame.columns:
            continue
        cells = [
            f"{latex_number(e)} [{latex_number(lo)}, {latex_number(hi)}]"
            for e, lo, hi in zip(frame[estimate], frame[low], frame[high])
        ]
        out.insert(out.columns.get_loc(estimate), f"{estimate}{CI_SUFFIX}", cells)
        out = out.drop(columns=[estimate, low, high])
    return out


def latex_table(title: str, frame: pd.DataFrame, label: str) -> str:
    """One summary table as a LaTeX ``table`` (booktabs; needs ``\\usepackage{booktabs}``), captioned ``title``."""
    frame = interval_columns(frame)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame]
    kinds = ["number" if n else "latex" if str(c).endswith(CI_SUFFIX) else "text" for c, n in zip(frame, numeric)]
    cell = {"number": latex_number, "latex": str, "text": lambda v: latex_escape(str(v))}  # CI cells are ours
    align = "".join("l" if k == "text" else "r" for k in kinds)
    head = " & ".join(latex_escape(str(c)) for c in frame.columns) + r" \\"
    rows = [" & ".join(cell[k](v) for v, k in zip(row, kinds)) + r" \\" for row in frame.itertuples(index=False)]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            f"\\caption{{{latex_escape(title)}}}",
            f"\\label{{tab:{label}}}",
            f"\\begin{{tabular}}{{{align}}}",
            r"\toprule",
            head,
            r"\midrule",
            *rows,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def slug(title: str, taken: set[str]) -> str:
    """A file and label name for a table title: lower-case words joined by '-', unique among ``taken``."""
    words = re.findall(r"[a-z0-9]+", title.lower().split(":")[0])
    base = "-".join(words[:6]) or "table"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name
