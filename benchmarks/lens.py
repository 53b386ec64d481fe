"""The lens against the capture it reads, and its memory on Gemma's 262k-token vocabulary.

1. The default run with ``[lens]`` in a fresh folder, in one process: the capture stage (every variant loaded and
   captured, heads kept) and the lens experiment (read-outs at every point, next-token comparisons, localisation),
   each timed; the ratio lens / capture. Target (issue 17): <= 1.5.
2. In a child process: the embedded Gemma 3 270M loaded, its head read, then the read-out pass over 2 variants x 19
   points x 235 prompts of residuals; peak resident memory above what the model and its head hold. Target: < 2 GB.

    python benchmarks/lens.py [--skip-run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def default_run_ratio() -> dict[str, float]:
    from layerdrift.workbench.config import LensSpec, default_config
    from layerdrift.workbench.experiments import lens
    from layerdrift.workbench.experiments.context import RunContext
    from layerdrift.workbench.experiments.registry import experiment_named
    from layerdrift.workbench.store.extract import extract

    config = default_config().model_copy(update={"lens": LensSpec()})
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        store = extract(config, out=folder, quiet=True)
        capture = time.perf_counter() - t0
        ctx = RunContext(config, store)
        ctx.results(experiment_named("analysis"))
        t1 = time.perf_counter()
        ctx.results(lens.EXPERIMENT)
        read = time.perf_counter() - t1
    return {"capture_s": capture, "lens_s": read, "ratio": read / capture}


GEMMA_CHILD = """
import json, resource, sys, time
import numpy as np
from layerdrift.analyses.lens import read_out
from layerdrift.workbench.config import VariantSpec
from layerdrift.workbench.models.heads import read_lens_head
from layerdrift.workbench.models.loading import load_hf_model

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

model, _, info = load_hf_model(VariantSpec(name="gemma", source="gemma3-270m"), "cpu", "float32")
head = read_lens_head(model, "gemma")
rng = np.random.default_rng(0)
points, n, d = info["n_layers"] + 2, 235, info["d_model"]
xs = {v: rng.normal(size=(points, n, d)).astype(np.float32) for v in ("a", "b")}
normalised = {v: [False] * points for v in xs}
before = peak()
t = time.perf_counter()
read_out({"a": head, "b": head}, xs, normalised, head, [("a", "b")], k=5)
print(json.dumps({"vocab": head.vocab_size, "points": points, "seconds": time.perf_counter() - t,
                  "model_and_head_mib": before, "peak_mib": peak(), "above_mib": peak() - before}))
"""


def gemma_memory() -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", GEMMA_CHILD], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-run", action="store_true", help="only the Gemma memory measurement")
    args = parser.parse_args()
    if not args.skip_run:
        r = default_run_ratio()
        print(
            f"default run: capture {r['capture_s']:.1f} s, lens {r['lens_s']:.1f} s: {r['ratio']:.2f}x (target <= 1.5x)"
        )
    g = gemma_memory()
    print(
        f"Gemma 3 270M ({g['vocab']} tokens), read-outs over 2 variants x {g['points']} points x 235 prompts: "
        f"{g['seconds']:.1f} s, peak {g['above_mib']:.0f} MiB above the model and head ({g['model_and_head_mib']:.0f} "
        "MiB) (target < 2048)"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
