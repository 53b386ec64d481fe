"""The report's PNGs: one Chromium for a run, started early; a browser that cannot start is a note, never a hang."""

from __future__ import annotations

import shutil

import plotly.graph_objects as go
import pytest

from layerdrift.dashboards.images import png_renderer, write_images


def figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1]), layout={"width": 300, "height": 200})


def test_a_browser_that_cannot_start_gives_the_note_and_does_not_hang(tmp_path, monkeypatch):
    """kaleido's own background server waits forever on a browser that died at launch; the renderer raises instead,
    whether it was started early or by the write."""
    import kaleido

    class NoBrowser(kaleido.Kaleido):
        async def __aenter__(self):
            raise RuntimeError("no browser here")

    monkeypatch.setattr(kaleido, "Kaleido", NoBrowser)
    with png_renderer() as renderer:
        renderer.start()
        note = write_images({"a": figure()}, tmp_path, renderer=renderer)
    assert note is not None and "PNG figures were not rendered (RuntimeError: no browser here)" in note
    assert "no browser here" in (write_images({"a": figure()}, tmp_path) or "")
    assert not (tmp_path / "a.png").exists()


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="needs Chromium")
def test_an_early_started_renderer_writes_the_same_png_as_a_fresh_one(tmp_path):
    with png_renderer() as renderer:
        renderer.start()
        assert write_images({"a": figure()}, tmp_path / "early", renderer=renderer) is None
    assert write_images({"a": figure()}, tmp_path / "fresh") is None
    early, fresh = (tmp_path / "early/a.png").read_bytes(), (tmp_path / "fresh/a.png").read_bytes()
    assert early[:8] == b"\x89PNG\r\n\x1a\n" and early == fresh


@pytest.mark.parametrize(
    ("error", "calls"),
    [("JavascriptError: ReferenceError: kaleido_scopes is not defined", 2), ("JavascriptError: TypeError: x", 1)],
)
def test_a_page_that_was_not_ready_is_rendered_again_and_nothing_else_is(error, calls, monkeypatch):
    """Under load kaleido's page can be asked to render before its scripts are defined (a ReferenceError): that call
    is made again; any other error is reported at once."""
    from layerdrift.dashboards import images

    made = []

    def fake_run(make, timeout):
        made.append(make)
        if len(made) == 1:
            raise RuntimeError(error)

    renderer = images.PngRenderer()
    monkeypatch.setattr(renderer, "_run", fake_run)
    monkeypatch.setattr(images.time, "sleep", lambda seconds: None)
    if calls == 1:
        with pytest.raises(RuntimeError, match="TypeError"):
            renderer.write([])
    else:
        renderer.write([])
    assert len(made) == calls


def test_the_report_page_opens_with_contents_and_findings_and_reads_every_figure(tiny_run, series_run):
    """A table of contents, the findings first, a section per experiment, and a line under every figure."""
    import re

    from layerdrift.dashboards.reading import SECTIONS, how_to_read
    from layerdrift.dashboards.report import index_html
    from layerdrift.workbench.experiments.registry import EXPERIMENTS

    assert {e.name for e in EXPERIMENTS} <= set(SECTIONS)
    for run in (tiny_run, series_run):
        unread = [key for key in run.figures if not how_to_read(key)]
        assert unread == [], unread
    page = index_html(tiny_run, True, ["a note"])
    toc = re.search(r'<nav class="toc">(.*?)</nav>', page).group(1)
    anchors = re.findall(r'href="#([\w-]+)"', toc)
    assert anchors[:2] == ["findings", "notes"] and anchors[-1] == "provenance"
    assert anchors[2:-1] == [e.name for e in tiny_run.experiments]
    assert re.findall(r'<section id="([\w-]+)">', page) == anchors
    figures = re.findall(r'<figure id="fig-([^"]+)">.*?</figure>', page, flags=re.S)
    assert figures == list(tiny_run.figures) and page.count('<p class="read">') == len(figures)
    drift = page[page.index('<section id="analysis">') : page.index('<section id="patching">')]
    assert "fig-drift_by_layer" in drift and "fig-patching_by_block" not in drift
