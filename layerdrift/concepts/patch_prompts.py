"""Prompt sets for activation patching: JSONL rows of ``prompt`` and ``target`` (+ optional ``category``).

The built-in ``flip-probes`` set (170 rows written for this project: two-digit addition,
one-digit multiplication, capitals, opposites) holds short prompts whose greedy answers change
easily between variants, so the flip selection finds prompts where behaviour moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from layerdrift.concepts.jsonl import read_jsonl, resolve_data_file

DATA = Path(__file__).parent / "data" / "patching"
BUILTIN_PATCH_SETS = {p.stem: p for p in sorted(DATA.glob("*.jsonl"))}


@dataclass(frozen=True)
class PatchPrompt:
    """One prompt and the continuation that would be correct."""

    prompt: str
    target: str
    category: str = "all"


def load_patch_prompts(name_or_path: str | Path) -> tuple[str, list[PatchPrompt]]:
    """(source path, rows) of a built-in patch set or a user JSONL file."""
    path = resolve_data_file(name_or_path, BUILTIN_PATCH_SETS, "patching prompt set")
    rows = read_jsonl(path, {"prompt": str, "target": str}, "patching prompt set")
    return str(path), [PatchPrompt(r["prompt"], r["target"], str(r.get("category") or "all")) for r in rows]
