"""Paper outputs: LaTeX tables (booktabs, CIs in brackets, escaped text) and vector figures."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import plotly.graph_objects as go
import pytest

from layerdrift.dashboards.paper import STYLES, interval_columns, latex_escape, latex_number, latex_table, styled

HOSTILE = ["a_b", "50%", "R&D", "$x^2$", "{~}", "back\\slash", "#1"]


def balanced(tex: str) -> bool:
    begins, ends = re.findall(r"\\begin\{(\w+)\}", tex), re.findall(r"\\end\{(\w+)\}", tex)
    return begins == ends[::-1]


def unescaped(tex: str) -> list[str]:
    """Special characters not preceded by a backslash, outside the $...$ of a number and the column separators
    (`` & ``: an escaped cell's ampersand is ``\\&``)."""
    body = re.sub(r"\$[^$]*\\times 10\^\{-?\d+\}\$", "", tex)
    return re.findall(r"(?<!\\)[_%&#]", body.replace(r"\\", "").replace(" & ", " "))


def test_numbers_keep_three_significant_digits_and_intervals_share_a_cell():
    assert [latex_number(x) for x in (0.0387, 0.037, 0.0406, 383.0, 2.0, 1.01e-4, 12345.6)] == [
        "0.0387",
        "0.0370",
        "0.0406",
        "383",
        "2",
        r"$1.01 \times 10^{-4}$",
        r"$1.23 \times 10^{4}$",
    ]
    frame = pd.DataFrame(
        {
            "pair": ["a→b"],
            "mean": [0.0387],
            "ci_low": [0.037],
            "ci_high": [0.0406],
            "drift": [0.5],
            "drift_ci_low": [0.4],
            "drift_ci_high": [0.6],
        }
    )
    merged = interval_columns(frame)
    assert list(merged.columns) == ["pair", "mean [95% CI]", "drift [95% CI]"]
    assert merged.iloc[0].tolist() == ["a→b", "0.0387 [0.0370, 0.0406]", "0.500 [0.400, 0.600]"]


def test_a_latex_table_is_booktabs_balanced_and_escapes_every_term():
    frame = pd.DataFrame({"term": HOSTILE, "mean": [0.1] * 7, "ci_low": [0.05] * 7, "ci_high": [0.2] * 7})
    tex = latex_table("Top_drifters & 100% of them", frame, "top")
    assert balanced(tex) and tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert unescaped(tex) == [], unescaped(tex)
    assert r"\caption{Top\_drifters \& 100\% of them}" in tex and r"\label{tab:top}" in tex
    for term in HOSTILE:
        assert latex_escape(term) in tex
    assert r"back\textbackslash{}slash" in tex and r"\{\textasciitilde{}\}" in tex
    rows = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + len(HOSTILE) and all(line.count("&") - line.count(r"\&") == 1 for line in rows)
    assert "0.100 [0.0500, 0.200]" in tex and "{lr}" in tex
    tiny = latex_table(
        "floor", pd.DataFrame({"pair": ["a→b"], "mean": [9.94e-5], "ci_low": [9.18e-5], "ci_high": [1.07e-4]}), "f"
    )
    cells = r"$9.94 \times 10^{-5}$ [$9.18 \times 10^{-5}$, $1.07 \times 10^{-4}$]"
    assert f"a$\\rightarrow$b & {cells} \\\\" in tiny and "textbackslash" not in tiny  # an interval is not re-escaped


def test_the_report_writes_every_summary_table_as_latex(tiny_run, tmp_path):
    from layerdrift.dashboards.report import write_report

    write_report(tiny_run, (), folder=str(tmp_path / "report"))
    latex = tmp_path / "report/latex"
    inputs = re.findall(r"\\input\{([\w-]+)\}", (latex / "tables.tex").read_text())
    titles = [t for t, f in tiny_run.summaries().items() if not f.empty]
    assert len(inputs) == len(titles) == len(set(inputs)) and all((latex / f"{n}.tex").is_file() for n in inputs)
    pairs = tiny_run.tables["pairs"].set_index("pair")
    first = (latex / f"{inputs[0]}.tex").read_text()
    assert balanced(first) and unescaped(first) == []
    row = pairs.loc["base→tuned"]
    cell = f"{latex_number(row['mean'])} [{latex_number(row['ci_low'])}, {latex_number(row['ci_high'])}]"
    assert cell in first
    for name in inputs:
        tex = (latex / f"{name}.tex").read_text()
        assert balanced(tex) and unescaped(tex) == [], name


def test_a_paper_style_sets_the_width_and_keeps_the_aspect():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout={"width": 1000, "height": 400})
    one = styled(fig, STYLES["one-column"])
    assert one.layout.width == 312 and one.layout.height == round(312 * 0.4)
    assert abs(one.layout.font.size - 8 * 96 / 72) < 1e-9 and fig.layout.width == 1000  # the original is untouched


def html_data(path) -> list:
    """The traces a figure's HTML page plots (the data argument of its ``Plotly.newPlot`` call)."""
    page = path.read_text()
    start = page.index("[", page.index("Plotly.newPlot("))
    return json.JSONDecoder().raw_decode(page, start)[0]


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="needs Chromium")
def test_svg_and_pdf_figures_are_valid_files_with_the_htmls_traces(tmp_path):
    from layerdrift.dashboards.images import write_images
    from layerdrift.dashboards.report import write_html_figures

    figs = {
        "two_lines": go.Figure(
            [go.Scatter(x=[0, 1, 2], y=[0, 1, 0], name="a"), go.Scatter(x=[0, 1, 2], y=[1, 0, 1], name="b")]
        ),
        "bars": go.Figure(go.Bar(x=["R&D", "a_b"], y=[1, 2])),
    }
    assert write_images(figs, tmp_path, ("svg", "pdf"), style=STYLES["two-column"]) is None
    write_html_figures(figs, tmp_path)
    for name, fig in figs.items():
        svg = ET.parse(tmp_path / f"{name}.svg").getroot()
        traces = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if "trace" in (g.get("class") or "").split()]
        assert len(traces) == len(fig.data) == len(html_data(tmp_path / f"{name}.html")), name
        assert float(svg.get("width")) == 648  # 6.75 in at 96 px per inch
        pdf = (tmp_path / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 1000
