"""Dashboard responsiveness in a real browser: time to open a run, and time for one layer step.

Opens the dashboard of a run of the default's size (``runs/smollm2-quantization``; made with
``layerdrift run`` if missing) in headless Chromium, measures page open until the map is drawn,
then clicks "previous layer" repeatedly and measures the time until the map title shows the new
layer. Targets: open < 5 s, step < 300 ms (median).

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", default="runs/smollm2-quantization")
    parser.add_argument("--steps", type=int, default=10)
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
        stderr=subprocess.DEVNULL,
    )
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
            steps = []
            layer = len(labels) - 1
            for _ in range(args.steps):
                layer -= 1
                t = time.perf_counter()
                page.locator("button.previous").click()
                page.get_by_text(f"(layer {labels[layer]})").first.wait_for(timeout=30000)
                steps.append(time.perf_counter() - t)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"dashboard of {run_dir} ({len(labels)} layers) in headless Chromium:")
    print(f"  open until the map is drawn: median {statistics.median(opens):.2f} s over {len(opens)} (target < 5 s)")
    print(
        "  one layer step until the map shows it: median "
        f"{1000 * statistics.median(steps):.0f} ms, max {1000 * max(steps):.0f} ms over "
        f"{len(steps)} (target < 300 ms)"
    )


if __name__ == "__main__":
    main()
