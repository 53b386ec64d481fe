"""Persistent homology cost: giotto-ph (layerdrift's default engine) vs ripser (the baseline), side by side.

Data: the embedded Gemma 3 270M's final-token states of the 235 EmbeddingDrift concepts (d = 640),
captured once into a temporary run store for the base model and its NF4 and bfloat16 copies.
Prints
  1. the time per Vietoris-Rips diagram (H0 + H1, 160 points, d = 640, distance matrix included),
     median over the subsamples, per engine, and their ratio (the diagrams must agree: W2 = 0);
  2. the whole topology step of ``layerdrift run`` (diagrams of every variant x 5 residual points x
     64 subsamples, summaries, W2 / bottleneck distances between the variants), per engine.

    python benchmarks/topology.py [--subsamples 64] [--size 160]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from layerdrift.analyses.topology import pairwise_euclidean, rips_diagrams, wasserstein_distance
from layerdrift.workbench.config import config_from_dict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subsamples", type=int, default=64)
    ap.add_argument("--size", type=int, default=160)
    args = ap.parse_args()
    from layerdrift.workbench.experiments.trajectory import TrajectoryRun, subsample_indices
    from layerdrift.workbench.store.extract import extract

    with tempfile.TemporaryDirectory() as tmp:
        base = {
            "name": "bench",
            "out": tmp,
            "analysis": {"png": False},
            "variants": [
                {"name": "base", "source": "gemma3-270m"},
                {"name": "nf4", "source": "gemma3-270m", "quantization": "nf4"},
                {"name": "bf16", "source": "gemma3-270m", "dtype": "bfloat16"},
            ],
        }
        cfg = config_from_dict(base)
        store = extract(cfg, quiet=True)
        final = store.residual_points("base", "concepts")[-1]
        x = store.activations("base", "concepts", final, "last").astype(np.float64)
        subs = subsample_indices(len(x), args.size, args.subsamples, seed=0)
        print(
            f"data: {len(x)} concepts x d = {x.shape[1]} (Gemma 3 270M, final norm); "
            f"{args.subsamples} subsamples of {subs.shape[1]} points"
        )
        per = {}
        diagrams = {}
        for engine in ("ripser", "giotto-ph"):
            rips_diagrams(pairwise_euclidean(x[subs[0]]), 1, engine)  # warm-up (imports)
            times = []
            out = []
            for idx in subs:
                t0 = time.perf_counter()
                out.append(rips_diagrams(pairwise_euclidean(x[idx]), 1, engine))
                times.append(time.perf_counter() - t0)
            per[engine], diagrams[engine] = float(np.median(times)), out
            print(f"  one diagram (H0 + H1), {engine:9s}: {1000 * per[engine]:7.2f} ms (median)")
        worst = max(
            wasserstein_distance(a[d], b[d]) for a, b in zip(diagrams["ripser"], diagrams["giotto-ph"]) for d in (0, 1)
        )
        print(
            f"  ratio ripser / giotto-ph: {per['ripser'] / per['giotto-ph']:.2f}x   (largest "
            f"W2 between the engines' diagrams: {worst:.2e})"
        )
        whole = {}
        for engine in ("ripser", "giotto-ph"):
            run_cfg = config_from_dict(
                {**base, "trajectory": {"engine": engine, "subsamples": args.subsamples, "subsample_size": args.size}}
            )
            job = TrajectoryRun(run_cfg, store)
            stacks = {v: job._stack(v) for v in job.variants}
            labels = [str(i) for i in range(next(iter(stacks.values())).shape[0])]
            t0 = time.perf_counter()
            tables, _, _ = job._topology(stacks, labels, None, lambda m: None)
            whole[engine] = time.perf_counter() - t0
            print(
                f"  whole topology step ({len(job.variants)} variants x 5 points x "
                f"{args.subsamples} subsamples + distances), {engine:9s}: {whole[engine]:6.1f} s"
            )
        print(f"  ratio ripser / giotto-ph (whole step): {whole['ripser'] / whole['giotto-ph']:.2f}x")
        dist = tables["topology_distances"]
        h1 = dist[dist["dim"] == 1].pivot_table(
            index=["a", "b"], columns="layer", values="wasserstein"
        )  # columns: residual point index
        print("  W2 between H1 diagrams per residual point (mean over paired subsamples):")
        print(h1.round(4).to_string())


if __name__ == "__main__":
    main()
