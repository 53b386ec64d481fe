"""Dashboard responsiveness in a real browser: time to open a run, and time for one layer step.

Opens the dashboard of a run of the default's size (``runs/smollm2-quantization``; made with
``layerdrift run`` if missing) in headless Chromium, measures page open until the map is drawn,
then clicks "previous layer" repeatedly and measures, inside the page (checked at every animation
frame), the time until the map's points start moving to the new layer's places, and until the
transition has ended and the drawn title names the new layer. Targets: open < 5 s, step < 300 ms (median).

    python benchmarks/dashboard.py [RUN_DIR] [--steps 10]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import ALL_NODES_JS  # the tests' page helpers

# the map's plot and the "previous layer" button, found once through Panel's shadow roots
FIND_MAP = (
    """() => {
  const all = """
    + ALL_NODES_JS
    + """;
  window.__map = all.find((n) => n.classList && n.classList.contains('js-plotly-plot')
                               && (n.querySelector('.gtitle') || {}).textContent?.startsWith('Joint'));
  window.__previous = all.find((n) => n.classList && n.classList.contains('previous'));
}"""
)

# click, then check at every animation frame: when the map's points first move (the step is on screen, the points
# gliding to their new places), and when the drawn title names the new layer (the transition has ended); ms
TIME_STEP = """(target) => new Promise((resolve) => {
  const point = () => (window.__map.querySelectorAll('.point')[7] || {getAttribute: () => null})
    .getAttribute('transform');
  const before = point();
  const t0 = performance.now();
  let moved = null;
  window.__previous.click();
  const check = () => {
    const now = performance.now() - t0;
    if (moved === null && point() !== before) moved = now;
    const title = window.__map.querySelector('.gtitle');
    if (title && title.textContent.includes(target)) resolve([moved ?? now, now]);
    else requestAnimationFrame(check);
  };
  check();
})"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", default="runs/smollm2-quantization")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--load", type=int, default=0, help="busy processes running meanwhile (a loaded machine: 2 on 2 cores)"
    )
    args = parser.parse_args()
    run_dir = Path(args.run)
    if not (run_dir / "results" / "meta.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "layerdrift.workbench.cli", "run", "--out", str(run_dir), "--quiet"], check=True
        )
    from playwright.sync_api import sync_playwright

    from layerdrift import open_run

    labels = open_run(run_dir).meta["labels"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "layerdrift.workbench.cli", "dashboard", str(run_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            opens = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                t = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60000)
                page.get_by_text(f"(layer {labels[-1]})").first.wait_for(timeout=60000)
                opens.append(time.perf_counter() - t)
                page.close()
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text(f"(layer {labels[-1]})").first.wait_for(timeout=60000)
            page.evaluate(FIND_MAP)
            moved, titled = [], []
            layer = len(labels) - 1
            for _ in range(args.steps):
                layer -= 1
                first, last = page.evaluate(TIME_STEP, f"(layer {labels[layer]})")
                moved.append(first / 1000)
                titled.append(last / 1000)
                page.wait_for_timeout(300)
            browser.close()
    finally:
        for p in [server, *busy]:
            p.terminate()
            p.wait(timeout=10)
    load = f", {args.load} busy processes running meanwhile" if args.load else ""
    print(f"dashboard of {run_dir} ({len(labels)} layers) in headless Chromium{load}:")
    print(f"  open until the map is drawn: median {statistics.median(opens):.2f} s over {len(opens)} (target < 5 s)")
    for what, times in (("the map's points start moving", moved), ("the transition ends (title names it)", titled)):
        print(
            f"  one layer step until {what}: median {1000 * statistics.median(times):.0f} ms, "
            f"max {1000 * max(times):.0f} ms over {len(times)}"
        )
    print("  (targets: points moving within 150 ms median; 300 ms on a loaded machine)")


if __name__ == "__main__":
    main()
