"""Instruction data sets for supervised fine-tuning: JSONL rows with ``prompt`` and ``response``.

Three objectives written for this project ship as built-ins (``scripts/build_instruction_sets.py``):
``helpful`` (320 direct answers: definitions, capitals, arithmetic, opposites, how-to steps),
``harmless`` (250: refusals with a safe alternative, and careful answers to sensitive questions)
and ``mixed`` (250: the two interleaved). A user file is validated line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from layerdrift.concepts.jsonl import read_jsonl, resolve_data_file
from layerdrift.errors import LayerdriftError

DATA = Path(__file__).parent / "data" / "instructions"
BUILTIN_OBJECTIVES = {p.stem: p for p in sorted(DATA.glob("*.jsonl"))}


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str


@dataclass(frozen=True)
class InstructionSet:
    """A named list of prompt/response examples and where it came from."""

    name: str
    source: str
    sha256: str
    examples: tuple[Example, ...]


def load_instruction_set(name_or_path: str | Path) -> InstructionSet:
    """A built-in objective by name, or a JSONL file of {"prompt", "response"} objects."""
    from layerdrift.core.hashing import file_sha256

    path = resolve_data_file(name_or_path, BUILTIN_OBJECTIVES, "instruction data set")
    rows = read_jsonl(path, {"prompt": str, "response": str}, "instruction data set")
    if len(rows) < 2:
        raise LayerdriftError(
            f"instruction data set {str(path)!r} has {len(rows)} example; fine-tuning needs "
            "at least 2 (one held out for the evaluation loss)."
        )
    name = str(name_or_path) if str(name_or_path) in BUILTIN_OBJECTIVES else path.stem
    examples = tuple(Example(r["prompt"], r["response"]) for r in rows)
    return InstructionSet(name, str(path), file_sha256(path), examples)
