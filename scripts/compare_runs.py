"""Compare every result table and array of two run folders: exact, or the largest float difference.

    python scripts/compare_runs.py RUN_A RUN_B

Used to check that a refactor leaves the numbers unchanged; exits 1 when anything differs by more than 1e-12.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from layerdrift.workbench.store.results import ResultSet, stored_result_sets

TOLERANCE = 1e-12


def column_difference(x: pd.Series, y: pd.Series) -> tuple[float, str | None]:
    """(largest float difference, a problem or None) between two columns."""
    if not pd.api.types.is_float_dtype(x):
        return 0.0, None if x.equals(y) else "values differ"
    xv, yv = x.to_numpy(float), y.to_numpy(float)
    if not np.array_equal(np.isnan(xv), np.isnan(yv)):
        return 0.0, "NaN pattern differs"
    d = float(np.nanmax(np.abs(xv - yv))) if np.isfinite(xv).any() else 0.0
    return d, f"max diff {d:.3g}" if d > TOLERANCE else None


def compare_sets(a: ResultSet, b: ResultSet) -> tuple[float, list[str]]:
    worst, problems = 0.0, []
    for t in sorted(set(a.tables) | set(b.tables)):
        x, y = a.tables.get(t), b.tables.get(t)
        if x is None or y is None or list(x.columns) != list(y.columns) or x.shape != y.shape:
            problems.append(f"{a.name}/{t}: only in one run, or columns/shape differ")
            continue
        for c in x.columns:
            d, problem = column_difference(x[c], y[c])
            worst = max(worst, d)
            if problem:
                problems.append(f"{a.name}/{t}.{c}: {problem}")
    for stem in sorted(set(a.arrays) & set(b.arrays)):
        for key, value in a.arrays[stem].items():
            if not np.array_equal(value, b.arrays[stem].get(key), equal_nan=True):
                problems.append(f"{a.name}/{stem}/{key}: array differs")
    return worst, problems


def main(a: Path, b: Path) -> int:
    sa, sb = stored_result_sets(a), stored_result_sets(b)
    print(f"result sets: {sorted(sa)} vs {sorted(sb)}")
    worst, problems = 0.0, [f"{n}: only in one run" for n in sorted(set(sa) ^ set(sb))]
    for name in sorted(set(sa) & set(sb)):
        d, found = compare_sets(sa[name].load(), sb[name].load())
        worst, problems = max(worst, d), problems + found
    print(f"{sum(len(s.names('parquet')) for s in sa.values())} tables compared; largest float difference {worst:.3g}")
    print("\n".join(problems) if problems else "ALL EQUAL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
