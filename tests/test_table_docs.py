"""docs/tables.md documents every result table: each column of the test runs' tables, with its type, and nothing
else. A table or column that changes without its documentation fails here, with the rows to paste."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

DOC = Path(__file__).resolve().parent.parent / "docs" / "tables.md"
TABLE_HEADING = re.compile(r"^### `([a-z_]+)`\s*$")
COLUMN_ROW = re.compile(r"^\| `([^`]+)` \| (str|int|float|bool) \| (.+) \|\s*$")


def documented_tables(text: str) -> dict[str, dict[str, str]]:
    """Per table heading (### `name`), its column rows: column -> type."""
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if m := TABLE_HEADING.match(line):
            current = tables.setdefault(m.group(1), {})
        elif current is not None and (m := COLUMN_ROW.match(line)):
            current[m.group(1)] = m.group(2)
    return tables


def column_type(series: pd.Series) -> str:
    kind = series.dtype.kind
    return {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(kind, "str")


def test_every_table_and_column_is_documented_with_its_type(tiny_run, series_run):
    documented = documented_tables(DOC.read_text(encoding="utf-8"))
    problems = []
    for run in (tiny_run, series_run):
        for name in run.tables:
            table = run.tables[name]
            if table.empty:
                continue
            actual = {c: column_type(table[c]) for c in table.columns}
            doc = documented.get(name)
            if doc is None:
                rows = "".join(f"| `{c}` | {t} | |\n" for c, t in actual.items())
                problems.append(f"table {name!r} is not in docs/tables.md:\n### `{name}`\n\n{rows}")
                continue
            for c, t in actual.items():
                if c not in doc:
                    problems.append(f"{name}.{c} ({t}) is not documented")
                elif doc[c] != t:
                    problems.append(f"{name}.{c} is documented as {doc[c]} but is {t}")
            problems += [f"{name}.{c} is documented but not in the table" for c in doc if c not in actual]
    assert not problems, "\n".join(problems)
