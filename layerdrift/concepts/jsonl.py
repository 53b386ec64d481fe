"""Validated reading of JSONL data files: every problem names the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layerdrift.errors import LayerdriftError


def resolve_data_file(name_or_path: str | Path, builtins: dict[str, Path], what: str) -> Path:
    """A built-in data set by name, or an existing file; otherwise one sentence listing the built-ins."""
    key = str(name_or_path)
    path = builtins.get(key, Path(key).expanduser())
    if not path.is_file():
        raise LayerdriftError(
            f"{what} {key!r} is neither a built-in ({', '.join(sorted(builtins))}) nor an "
            "existing file; check the name or path."
        )
    return path


def read_jsonl(path: Path, required: dict[str, type], what: str) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each an object with the required non-empty fields of the given types."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LayerdriftError(f"{what} {str(path)!r} is not UTF-8 text; save it as UTF-8 JSONL.") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{what} {str(path)!r}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LayerdriftError(
                f"{where} is not valid JSON ({err.msg}); each line must be one JSON object."
            ) from None
        if not isinstance(row, dict):
            raise LayerdriftError(
                f"{where} is not a JSON object; each line must be one object with fields {', '.join(required)}."
            )
        for field, kind in required.items():
            value = row.get(field)
            if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
                raise LayerdriftError(
                    f"{where} lacks a non-empty {kind.__name__} field {field!r}; each line needs {', '.join(required)}."
                )
        rows.append(row)
    if not rows:
        raise LayerdriftError(f"{what} {str(path)!r} has no rows; add one JSON object per line.")
    return rows
