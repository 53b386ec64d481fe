"""SMDS cost: every (layer, token) cell in batches (layerdrift) vs a per-cell loop of the same algebra.

Both score the same cells: SmolLM2's residual stream at every aligned token of the birthday probe
set (captured once into a temporary run store), 5-fold cross-validated, ridge and orthonormal maps.
The baseline is ``smds_cell_reference``: numpy, one cell and one fold at a time, primal ridge, the
way a notebook loops over layers and tokens. Timed side by side on the same cells; prints the ratio
and the largest score difference.

    python benchmarks/manifold.py [--prompts 300] [--layers 0,10,20,30]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from layerdrift.analyses.manifold import smds_cell_reference, smds_cells
from layerdrift.workbench.config import config_from_dict
from layerdrift.workbench.experiments.manifold import POSITION


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=300)
    ap.add_argument(
        "--layers",
        default="0,10,20,30",
        help="residual points timed (0 = embedding); the batched version also scores all of them",
    )
    args = ap.parse_args()
    from layerdrift.workbench.experiments.manifold import ManifoldRun
    from layerdrift.workbench.models.loading import LazyVariant
    from layerdrift.workbench.store.extract import extract

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict(
            {
                "name": "bench",
                "out": tmp,
                "variants": [{"name": "reference", "source": "smollm2-135m-instruct"}],
                "prompt_sets": [{"name": "concepts", "vocabulary": "embeddingdrift-235"}],
                "manifold": {"sets": ["birthday"], "n_prompts": args.prompts},
            }
        )
        store = extract(cfg, quiet=True)
        job = ManifoldRun(cfg, store)
        model = LazyVariant(cfg.variant("reference"))
        _, hooks = job.capture(job.sets[0], "reference", model, None)
        model.release()
        acts = [store.activations("reference", "probe-birthday", h, POSITION) for h in hooks]  # each (n, slots, d)
    from layerdrift.concepts.probes import load_probe_set

    labels = load_probe_set("birthday", args.prompts).labels
    layers = [int(x) for x in args.layers.split(",")]
    cells = np.concatenate([np.swapaxes(acts[l], 0, 1) for l in layers])  # (layers * slots, n, d)
    n_slots, d = acts[0].shape[1], acts[0].shape[2]
    print(f"{len(layers)} residual points x {n_slots} tokens = {len(cells)} cells; n = {len(labels)}, d = {d}, 5 folds")

    t0 = time.perf_counter()
    batched = smds_cells(cells, labels, "circular", 365.0)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = np.array([smds_cell_reference(c, labels, "circular", 365.0) for c in cells])
    t_loop = time.perf_counter() - t0
    ok = np.isfinite(batched.score)
    diff = max(np.abs(batched.score[ok] - loop[ok, 0]).max(), np.abs(batched.score_orthonormal[ok] - loop[ok, 1]).max())
    print(f"batched (layerdrift): {t_batched:7.2f} s  ({1000 * t_batched / len(cells):.1f} ms per cell)")
    print(f"per-cell loop:        {t_loop:7.2f} s  ({1000 * t_loop / len(cells):.1f} ms per cell)")
    print(f"speed-up: {t_loop / t_batched:.1f}x; largest score difference {diff:.2e} over {ok.sum()} scored cells")

    every = np.concatenate([np.swapaxes(a, 0, 1) for a in acts])
    t0 = time.perf_counter()
    for start in range(0, len(acts), 2):
        smds_cells(every[start * n_slots : (start + 2) * n_slots], labels, "circular", 365.0)
    print(f"all {len(every)} cells of the variant, two layers per batch: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
