"""The dashboard shell: a title and one tab per experiment the run has, served on localhost.

Each experiment's tab comes from its own dashboards module (``tabs(run, selection)``), through the registry; the
shell never names an experiment. The tabs share one ``Selection`` per session (the layer and the concept).
Everything shown comes from the run's result tables through the same figure builders as the report; nothing is
recomputed here.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from layerdrift.dashboards.markup import md
from layerdrift.dashboards.selection import Selection


def build_app(run: Any) -> pn.viewable.Viewable:
    """The Panel layout for one browser session: the title and every experiment's tabs, in registry order."""
    pn.extension("plotly", "tabulator", sizing_mode="stretch_width", notifications=True)
    title = md(
        "## layerdrift · {name}\n\nvariants compared against **{reference}**",
        name=run.store.manifest["config"]["name"],
        reference=run.meta.get("reference", run.store.reference),
    )
    selection = Selection()
    tabs = [tab for experiment in run.experiments for tab in experiment.tabs(run, selection)]
    return pn.Column(pn.pane.Markdown(title), pn.Tabs(*tabs, dynamic=False), sizing_mode="stretch_width")


def serve(run: Any, port: int = 5006, address: str = "127.0.0.1", show: bool = False) -> None:
    """Serve the dashboard of an opened run (localhost unless another address is asked for)."""
    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    pn.serve(
        {"/": lambda: build_app(run)},
        port=port,
        address=address,
        show=show,
        websocket_origin=origins,
        title="layerdrift",
        threaded=False,
        print_url=True,
    )
