"""The Ray engine against the local one on the embedded default run, side by side in one process.

Baseline: ``engine = "local"`` (everything in this process). Measured, each on a fresh run folder:

- capture of the default config's 4 variants (235 prompts, every residual point): local vs Ray on a local
  2-CPU cluster, the cluster's start-up (``ray.init`` plus one empty task's round trip) timed apart;
- the drift analyses of that run (every pair, every layer, the per-layer UMAP and PCA maps): local vs Ray.

Both engines must give the same arrays byte for byte and the same tables; the benchmark checks it.

    python benchmarks/engines.py [--num-cpus 2] [--umap-layers all|headline]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _noop(x: int) -> int:
    return x


def zarr_bytes(root: Path) -> dict[str, bytes]:
    import zarr

    return {
        str(m.parent.relative_to(root)): np.asarray(zarr.open_array(store=str(m.parent), mode="r")[...]).tobytes()
        for m in sorted((root / "captures").rglob("zarr.json"))
    }


def main() -> None:
    import ray

    from layerdrift.core.engine import open_engine
    from layerdrift.workbench.config import default_config
    from layerdrift.workbench.experiments.drift import analyze
    from layerdrift.workbench.store.extract import extract

    parser = argparse.ArgumentParser()
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--umap-layers", default="all")
    args = parser.parse_args()
    base = default_config()
    spec = base.analysis.model_copy(update={"umap_layers": args.umap_layers, "png": False})
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        local = extract(base, out=Path(tmp) / "local", quiet=True)
        out["capture_local_s"] = time.perf_counter() - t

        t = time.perf_counter()
        with open_engine("ray", num_cpus=args.num_cpus) as engine:
            ray.get(ray.remote(_noop).remote(0))
            out["ray_startup_s"] = time.perf_counter() - t
            t = time.perf_counter()
            on_ray = extract(base, out=Path(tmp) / "ray", quiet=True, engine=engine)
            out["capture_ray_s"] = time.perf_counter() - t
            za, zb = zarr_bytes(local.root), zarr_bytes(on_ray.root)
            assert za.keys() == zb.keys() and all(za[k] == zb[k] for k in za), "captures differ between engines"

            t = time.perf_counter()
            on_ray_tables = analyze(on_ray, spec, base.seed, engine=engine).tables
            out["analyses_ray_s"] = time.perf_counter() - t
        t = time.perf_counter()
        local_tables = analyze(local, spec, base.seed).tables
        out["analyses_local_s"] = time.perf_counter() - t
        for name, frame in local_tables.items():
            pd.testing.assert_frame_equal(frame, on_ray_tables[name], check_exact=True, obj=name)

    out["capture_ratio"] = out["capture_ray_s"] / out["capture_local_s"]
    out["capture_ratio_with_startup"] = (out["capture_ray_s"] + out["ray_startup_s"]) / out["capture_local_s"]
    out["analyses_ratio"] = out["analyses_ray_s"] / out["analyses_local_s"]
    print(f"default run (4 variants x 235 prompts x 32 points), Ray on a local {args.num_cpus}-CPU cluster vs local:")
    print(f"  Ray start-up (init + one empty task): {out['ray_startup_s']:.1f} s")
    print(
        f"  capture: local {out['capture_local_s']:.1f} s, Ray {out['capture_ray_s']:.1f} s "
        f"(ratio {out['capture_ratio']:.2f}; {out['capture_ratio_with_startup']:.2f} with start-up)"
    )
    print(
        f"  analyses (umap_layers = {args.umap_layers}): local {out['analyses_local_s']:.1f} s, "
        f"Ray {out['analyses_ray_s']:.1f} s (ratio {out['analyses_ratio']:.2f})"
    )
    print("  arrays byte-identical and tables equal across engines: yes")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
