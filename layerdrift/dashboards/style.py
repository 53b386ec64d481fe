"""The shared look of every figure: layout, colours, bands and layer ticks."""

from __future__ import annotations

import html
import textwrap
from typing import Any

import pandas as pd
import plotly.graph_objects as go

CATEGORY_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


PAIR_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


FLOOR_COLOUR = "#999999"


LAYOUT = dict(template="plotly_white", font=dict(size=13), margin=dict(l=70, r=30, t=60, b=60))


def category_colours(categories: list[str]) -> dict[str, str]:
    return {c: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, c in enumerate(dict.fromkeys(categories))}


def pair_colours(pairs: list[str]) -> dict[str, str]:
    return {p: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, p in enumerate(pairs)}


def hex_to_rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layer_ticks(layers: pd.DataFrame) -> dict:
    """About 16 tick labels along the residual points, always including the first and the last."""
    labels = layers.drop_duplicates("layer").sort_values("layer")
    step = max(1, len(labels) // 16)
    keep = labels.iloc[sorted(set(range(0, len(labels), step)) | {len(labels) - 1})]
    return dict(tickmode="array", tickvals=keep["layer"].tolist(), ticktext=keep["label"].astype(str).tolist())


def shade_band(
    fig: go.Figure, x, lo, hi, colour: str, name: str, row: int | None = None, col: int | None = None
) -> None:
    kw = dict(row=row, col=col) if row else {}
    fig.add_trace(
        go.Scatter(
            x=list(x) + list(x)[::-1],
            y=list(hi) + list(lo)[::-1],
            fill="toself",
            fillcolor=hex_to_rgba(colour, 0.18),
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        ),
        **kw,
    )


def ci_error_bars(
    frame: pd.DataFrame, estimate: str = "mean", low: str = "ci_low", high: str = "ci_high", **style: Any
) -> dict[str, Any]:
    """Plotly error bars from an estimate column and its CI's bounds (asymmetric)."""
    array, minus = frame[high] - frame[estimate], frame[estimate] - frame[low]
    return {"type": "data", "symmetric": False, "array": array, "arrayminus": minus, **style}


def grouped_ci_bars(
    frame: pd.DataFrame, x: str, group: str, colours: dict[str, str], title: str, yaxis_title: str, **layout: Any
) -> go.Figure:
    """One bar per (``x``, ``group``) at the ``mean`` column with its 95% CI (``ci_low``, ``ci_high``), the groups side
    by side in ``colours``; on a log axis (drift spans orders of magnitude)."""
    fig = go.Figure()
    for name, t in frame.groupby(group, sort=False):
        fig.add_trace(
            go.Bar(
                x=t[x],
                y=t["mean"],
                name=str(name),
                marker_color=colours[name],
                error_y=ci_error_bars(t),
                hovertemplate="%{x}<br>mean %{y:.4g}<extra>" + html.escape(str(name)) + "</extra>",
            )
        )
    fig.update_layout(
        **{**LAYOUT, "barmode": "group", "title": title, "yaxis_title": yaxis_title, "yaxis_type": "log", **layout}
    )
    return fig


def empty_figure(message: str, **layout: Any) -> go.Figure:
    """A figure that says, in its middle, why there is nothing to draw (the message is text: escaped, wrapped)."""
    fig = go.Figure()
    text = "<br>".join(html.escape(line) for line in textwrap.wrap(message, 80))
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)  # no empty axes around the message
    if layout:
        fig.update_layout(**layout)
    return fig


CURRENT_LAYER_COLOUR = "#00a0ff"


def mark_layer(fig: go.Figure, x: float) -> go.Figure:
    """A vertical line at depth ``x`` on every x axis of the figure (the dashboard's current layer). On a figure a
    dashboard pane shows, this is one small relayout message, not a new figure."""
    axes = [axis.plotly_name for axis in fig.select_xaxes()] or ["xaxis"]
    shapes = [
        dict(
            type="line",
            xref=f"x{axis[5:]}",
            yref=f"y{axis[5:]} domain",
            x0=x,
            x1=x,
            y0=0,
            y1=1,
            line=dict(color=CURRENT_LAYER_COLOUR, width=2, dash="dot"),
            layer="below",
        )
        for axis in axes
    ]
    fig.update_layout(shapes=shapes)
    return fig


# the dashboards' small HTML tables (neighbours, lens read-outs)
TABLE_CSS = """
table.small { border-collapse: collapse; font-size: 13px; width: 100%; }
table.small th, table.small td { padding: 4px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; }
table.small th { border-bottom: 2px solid #bbb; }
table.small .num { text-align: right; font-variant-numeric: tabular-nums; }
"""
