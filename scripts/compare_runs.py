"""Compare every result table and array of two run folders: exact, or the largest float difference.

    python scripts/compare_runs.py RUN_A RUN_B

Used to check that a refactor leaves the numbers unchanged; exits 1 when anything differs by more than 1e-12
or a row of RUN_A is missing from RUN_B. Rows are matched on the non-float columns, so row order may change;
rows only in RUN_B (a table that gained rows) are printed as notes.
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


def plain(table: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns (ordered point labels) as their values, so old and new tables compare."""
    cats = [c for c in table.columns if isinstance(table[c].dtype, pd.CategoricalDtype)]
    return table.astype(dict.fromkeys(cats, object)) if cats else table


def aligned(x: pd.DataFrame, y: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """The rows of x and y matched on their non-float columns (row order may differ), and how many rows of each
    found no partner."""
    keys = [c for c in x.columns if not pd.api.types.is_float_dtype(x[c])]
    if not keys or (x.shape == y.shape and x[keys].equals(y[keys])):
        return x, y, 0, 0
    m = x.reset_index(drop=True).merge(
        y.reset_index(drop=True), on=keys, how="outer", suffixes=("", "__b"), indicator=True, validate="1:1"
    )
    both = m[m["_merge"] == "both"]
    floats = [c for c in x.columns if c not in keys]
    right = both[keys + [f"{c}__b" for c in floats]].rename(columns=lambda c: c.removesuffix("__b"))
    return (
        both[list(x.columns)],
        right[list(x.columns)],
        int((m["_merge"] == "left_only").sum()),
        int((m["_merge"] == "right_only").sum()),
    )


def compare_sets(a: ResultSet, b: ResultSet) -> tuple[float, list[str], list[str]]:
    """(largest float difference, problems, notes): rows only in ``b`` are notes (new rows), anything else a
    problem."""
    worst, problems, notes = 0.0, [], []
    for t in sorted(set(a.tables) | set(b.tables)):
        x, y = a.tables.get(t), b.tables.get(t)
        if x is None or y is None or set(x.columns) != set(y.columns):
            problems.append(f"{a.name}/{t}: only in one run, or the columns differ")
            continue
        x, y = plain(x), plain(y)
        x, y, lost, added = aligned(x, y[list(x.columns)])
        if lost:
            problems.append(f"{a.name}/{t}: {lost} rows of the first run are missing from the second")
        if added:
            notes.append(f"{a.name}/{t}: {added} rows only in the second run")
        for c in x.columns:
            d, problem = column_difference(x[c].reset_index(drop=True), y[c].reset_index(drop=True))
            worst = max(worst, d)
            if problem:
                problems.append(f"{a.name}/{t}.{c}: {problem}")
    for stem in sorted(set(a.arrays) & set(b.arrays)):
        for key, value in a.arrays[stem].items():
            if not np.array_equal(value, b.arrays[stem].get(key), equal_nan=True):
                problems.append(f"{a.name}/{stem}/{key}: array differs")
    return worst, problems, notes


def main(a: Path, b: Path) -> int:
    sa, sb = stored_result_sets(a), stored_result_sets(b)
    print(f"result sets: {sorted(sa)} vs {sorted(sb)}")
    worst, problems, notes = 0.0, [f"{n}: only in one run" for n in sorted(set(sa) ^ set(sb))], []
    for name in sorted(set(sa) & set(sb)):
        d, found, noted = compare_sets(sa[name].load(), sb[name].load())
        worst, problems, notes = max(worst, d), problems + found, notes + noted
    print("\n".join(f"note: {n}" for n in notes))
    print(f"{sum(len(s.names('parquet')) for s in sa.values())} tables compared; largest float difference {worst:.3g}")
    print("\n".join(problems) if problems else "ALL EQUAL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
