"""Cross-layer CKA matrix against its two baselines, all timed in this one run.

- the per-pair reference, which centres both representations and builds both Grams for every pair;
- the Gram-building floor: centring each representation and building its Gram once (BLAS syrk, the
  lower triangle only, the fastest way on the CPU), with nothing else; layerdrift must also form the
  L_a x L_b inner products, so it cannot beat this.

Two synthetic variants of 31 layers (a residual-like random walk, the second a perturbed copy),
n = 2000 inputs, d = 576. The matrices must agree to 1e-6.

    python benchmarks/cka.py [--n 2000] [--d 576] [--layers 31] [--pairs all|K]

``--pairs K`` times the reference on K evenly spread pairs only and scales by 961/K (labelled so).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.linalg.blas import dsyrk

from layerdrift.analyses.similarity import cka_matrix, compute_device


def reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Biased linear CKA from scratch: centre, build both Grams, Frobenius products."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l = xc @ xc.T, yc @ yc.T
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def gram_floor(xs: list[np.ndarray]) -> float:
    """Seconds to centre every representation and build its Gram's lower triangle once (syrk)."""
    out = np.zeros((len(xs[0]), len(xs[0])))
    t = time.perf_counter()
    for x in xs:
        xc = x - x.mean(0)
        dsyrk(1.0, xc.T, c=out.T, trans=1, overwrite_c=1)
    return time.perf_counter() - t


def synthetic(n: int, d: int, layers: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    a, b = [], []
    for _ in range(layers):
        x = x + 0.5 * rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) / np.sqrt(d))
        a.append(x.copy())
        b.append(x + 0.3 * rng.normal(size=(n, d)))
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--layers", type=int, default=31)
    parser.add_argument("--pairs", default="all")
    args = parser.parse_args()
    a, b = synthetic(args.n, args.d, args.layers)
    t_floor = gram_floor(a + b)
    t = time.perf_counter()
    fast = cka_matrix(a, b)
    t_fast = time.perf_counter() - t
    all_pairs = [(i, j) for i in range(args.layers) for j in range(args.layers)]
    pairs = (
        all_pairs
        if args.pairs == "all"
        else [all_pairs[k] for k in np.linspace(0, len(all_pairs) - 1, int(args.pairs)).astype(int)]
    )
    t = time.perf_counter()
    ref = {(i, j): reference_cka(a[i], b[j]) for i, j in pairs}
    t_ref = (time.perf_counter() - t) * len(all_pairs) / len(pairs)
    err = max(abs(fast[i, j] - v) for (i, j), v in ref.items())
    label = "measured" if len(pairs) == len(all_pairs) else f"extrapolated from {len(pairs)} pairs"
    print(f"cross-layer CKA, {args.layers}x{args.layers} layers, n={args.n}, d={args.d}")
    print(f"  Gram-building floor (centre + syrk, each of the {2 * args.layers} Grams once): {t_floor:.2f} s")
    print(f"  layerdrift cka_matrix (torch on {compute_device()}, Gram rows streamed in blocks): {t_fast:.2f} s")
    print(f"  per-pair reference (both Grams rebuilt per pair): {t_ref:.2f} s ({label})")
    print(f"  layerdrift / floor: {t_fast / t_floor:.2f}x  (target <= 1.5x)")
    print(f"  reference / layerdrift: {t_ref / t_fast:.1f}x  (target >= 40x)")
    print(f"  max |difference| = {err:.2e}  (target <= 1e-6)")


if __name__ == "__main__":
    main()
