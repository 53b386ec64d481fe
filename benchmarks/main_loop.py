"""The main loop a new user lives in (run, open the dashboard, step through layers), measured side by side in one
run on this machine:

1. the default run (``layerdrift run`` on the embedded default) from an empty run folder after ``make setup``
   (the models' conversion and UMAP's compiled functions cached, nothing of the run), then again unchanged;
   each with a per-stage breakdown from the run's own progress lines, and the peak memory;
2. the layer maps, aligned vs independent (``benchmarks/maps.py``): consecutive-layer jump and k-NN preservation;
3. the dashboard (``benchmarks/dashboard.py``): time to open, and per layer step until the map's points move;
4. the cross-layer CKA (``benchmarks/cka.py``) against the per-pair reference and the Gram-building floor.

Targets (issue 18): cold run <= 60 s, warm rerun <= 10 s, peak memory no higher than before; the others in their
own scripts.

    python benchmarks/main_loop.py [--skip maps,dashboard,cka]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
STAGES = ("start-up and capture", "analyses", "maps (UMAP, PCA)", "report")
MARKS = ("analyses", "projections (UMAP, PCA)", "report", "done")  # the progress lines where each stage ends


def timed_run(out: Path) -> tuple[float, dict[str, float], float]:
    """Wall time, seconds per stage, and the peak RSS (MiB) of one ``layerdrift run --out OUT``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "layerdrift.workbench.cli", "run", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    at = {m: float(s) for s, m in re.findall(r"^\[\s*([\d.]+)s\] (.+)$", proc.stdout, flags=re.M) if m in MARKS}
    start_up = wall - at["done"]  # the run's clock starts after the imports: they count as start-up
    bounds = [wall]
    for mark in reversed(MARKS[:-1]):  # a stage with nothing to do prints no line: it took no time
        bounds.insert(0, at.get(mark, bounds[0] - start_up) + start_up)
    bounds.insert(0, 0.0)
    stages = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(STAGES)}
    return wall, stages, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", default="", help="comma-separated: maps, dashboard, cka")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cold = timed_run(out)
        warm = timed_run(out)
    print("default run (embedded SmolLM2: 4 variants x 235 concepts, 31 residual points), this machine:")
    print(f"  {'stage':<24}{'cold':>9}{'warm':>9}")
    for stage in STAGES:
        print(f"  {stage:<24}{cold[1][stage]:>8.1f}s{warm[1][stage]:>8.1f}s")
    print(f"  {'total':<24}{cold[0]:>8.1f}s{warm[0]:>8.1f}s   (targets: 60 s cold, 10 s warm)")
    print(f"  peak memory of the cold run: {cold[2]:.0f} MiB")
    sys.stdout.flush()
    runs = ["runs/smollm2-quantization"]
    for name, argv in (
        ("maps", ["maps.py", "--run", *runs]),
        ("dashboard", ["dashboard.py", *runs]),
        ("cka", ["cka.py", "--pairs", "31"]),
    ):
        if name not in skip:
            print()
            subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], check=True)


if __name__ == "__main__":
    main()
