"""Figure files rendered in Chromium (kaleido): PNG, SVG and PDF, optionally sized for a paper's column.

One ``PngRenderer`` per report (or per run): its browser can be launched in the background ahead of the report, and
a browser that cannot start raises instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from threading import Thread
from typing import Any

import plotly.graph_objects as go

from layerdrift.dashboards.paper import PaperStyle, styled

RENDER_TIMEOUT = 600  # seconds for Chromium to start, or to render a report's figures
PAGE_NOT_READY = "ReferenceError"  # kaleido's page asked to render before its scripts were defined
PAGE_TRIES = 3


class PngRenderer:
    """One Chromium (kaleido) for a report's PNGs. ``start()`` launches it in the background, so a report rendered
    later does not wait the ~3 s of its start (a run starts it when its experiments begin computing); ``write``
    renders with it (launching it first if need be), ``close`` ends it. Each call waits for its own result: a browser
    that cannot start raises from ``write``, it never hangs."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._browser: Future[Any] | None = None

    def start(self) -> None:
        if self._loop is not None:
            return
        import kaleido

        async def launch() -> Any:
            browser = kaleido.Kaleido()
            await browser.__aenter__()
            return browser

        self._loop = asyncio.new_event_loop()
        self._thread = Thread(target=self._loop.run_forever, name="png-renderer", daemon=True)
        self._thread.start()
        self._browser = asyncio.run_coroutine_threadsafe(launch(), self._loop)

    def _run(self, make: Callable[[Any], Any], timeout: float) -> Any:
        """``make(browser)``'s coroutine run on the renderer's loop, waited for."""
        self.start()
        assert self._loop is not None and self._browser is not None
        browser = self._browser.result(timeout=timeout)
        return asyncio.run_coroutine_threadsafe(make(browser), self._loop).result(timeout=timeout)

    def write(self, specs: list[dict[str, Any]]) -> None:
        """Render kaleido specs (fig, path, opts); the first figure that fails raises. A page whose scripts had not
        loaded yet (a ``ReferenceError``, seen on a loaded machine) is rendered again, up to ``PAGE_TRIES`` times."""
        for attempt in range(1, PAGE_TRIES + 1):
            try:
                self._run(lambda browser: browser.write_fig_from_object(specs, cancel_on_error=True), RENDER_TIMEOUT)
                return
            except Exception as err:
                if PAGE_NOT_READY not in str(err) or attempt == PAGE_TRIES:
                    raise
                time.sleep(attempt)

    def close(self) -> None:
        if self._loop is None:
            return
        with suppress(Exception):  # a browser that never started has nothing to close
            self._run(lambda browser: browser.__aexit__(None, None, None), 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._browser = None


@contextmanager
def png_renderer() -> Iterator[PngRenderer]:
    """A ``PngRenderer`` closed when the block ends."""
    renderer = PngRenderer()
    try:
        yield renderer
    finally:
        renderer.close()


def image_spec(name: str, fig: go.Figure, folder: Path, fmt: str) -> dict[str, Any]:
    """What kaleido renders for one figure in one format: its own size (default 1000 x 500), PNG at 1.5x."""
    size = {"width": fig.layout.width or 1000, "height": fig.layout.height or 500}
    scale = 1.5 if fmt == "png" else 1
    return {"fig": fig.to_dict(), "path": folder / f"{name}.{fmt}", "opts": {"format": fmt, "scale": scale, **size}}


def write_images(
    figs: dict[str, go.Figure],
    folder: Path,
    formats: Sequence[str] = ("png",),
    renderer: PngRenderer | None = None,
    style: PaperStyle | None = None,
) -> str | None:
    """Each figure in each format (png, svg, pdf), at ``style``'s size when given, all in one Chromium session
    (``renderer``'s, or one for these figures). Returns a one-sentence note if they could not be rendered."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [image_spec(name, styled(fig, style), folder, fmt) for fmt in formats for name, fig in figs.items()]
    if not specs:
        return None
    try:
        with nullcontext(renderer) if renderer is not None else png_renderer() as chromium:
            chromium.write(specs)
    except Exception as err:
        reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
        return (
            f"{'/'.join(f.upper() for f in formats)} figures were not rendered ({reason}); install Chromium "
            "(`apt-get install chromium`) or set analysis.png = false."
        )
    return None
