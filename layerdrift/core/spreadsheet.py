"""CSV for spreadsheets: cells that a spreadsheet would run as a formula are neutralised.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (CSV injection, OWASP). Every CSV layerdrift writes goes
through ``to_csv``, which prefixes such cells with a single quote, the common convention that makes a
spreadsheet show them as text. Numbers are left alone (a negative number is a number), and Parquet
files keep every value exact.
"""

from __future__ import annotations

from typing import IO

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """``'=cmd()`` for a formula-looking text cell; any other value unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (and column names) cannot run as formulas."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def to_csv(df: pd.DataFrame, target: str | IO[str]) -> None:
    """Write a table as CSV that is safe to open in a spreadsheet."""
    spreadsheet_safe(df).to_csv(target, index=False)
