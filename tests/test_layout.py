"""The package's shape: no function over 60 lines (split a longer one into steps with names)."""

from __future__ import annotations

import ast
from pathlib import Path

import layerdrift

MAX_LINES = 60


def long_functions() -> dict[str, int]:
    root = Path(layerdrift.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    found[f"{path.relative_to(root).as_posix()}:{node.name}"] = lines
    return found


def test_no_long_functions():
    found = long_functions()
    assert not found, f"functions over {MAX_LINES} lines: {found}; split them into steps with names"
