"""A/B behaviour data sets in the model-written-evals JSONL format, and their prompt formatting.

Each row has ``question`` (with the choices written out), ``answer_matching_behavior`` and
``answer_not_matching_behavior`` (e.g. ``"(A)"``). Six sets of 40 items written for this project
ship as built-ins: myopic-reward, power-seeking, survival-instinct, corrigibility, sycophancy,
self-awareness (the matching answer is (A) in exactly half of each set).

The prompt format is explicit and, by default, identical for every variant: ``template``
holds ``{question}``, and the answer is appended as ``answer_prefix`` + letter, so the last
token of a rendered prompt is the answer letter. The published base-vs-chat comparison used
different formats for the two models, which confounds format with model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from layerdrift.concepts.jsonl import read_jsonl, resolve_data_file
from layerdrift.errors import LayerdriftError

DATA = Path(__file__).parent / "data" / "behaviours"
BUILTIN_BEHAVIOURS = {p.stem: p for p in sorted(DATA.glob("*.jsonl"))}
ANSWER = re.compile(r"^\s*\(([A-Z])\)\s*$")


@dataclass(frozen=True)
class BehaviourItem:
    """One A/B question: the letter of the behaviour-matching answer and of the other one."""

    question: str
    matching: str
    not_matching: str


@dataclass(frozen=True)
class BehaviourSet:
    name: str
    source: str
    items: tuple[BehaviourItem, ...]


def load_behaviour_set(name_or_path: str | Path) -> BehaviourSet:
    """A built-in behaviour set by name, or a user JSONL file; every bad row is named by its line."""
    path = resolve_data_file(name_or_path, BUILTIN_BEHAVIOURS, "behaviour set")
    rows = read_jsonl(
        path, {"question": str, "answer_matching_behavior": str, "answer_not_matching_behavior": str}, "behaviour set"
    )
    items = []
    for number, row in enumerate(rows, start=1):
        letters = []
        for field in ("answer_matching_behavior", "answer_not_matching_behavior"):
            m = ANSWER.match(row[field])
            if not m:
                raise LayerdriftError(
                    f"behaviour set {str(path)!r}, item {number}: {field} is {row[field]!r}, expected "
                    "a letter in brackets such as '(A)'."
                )
            letters.append(m.group(1))
        if letters[0] == letters[1]:
            raise LayerdriftError(
                f"behaviour set {str(path)!r}, item {number}: both answers are ({letters[0]}); "
                "the matching and non-matching answers must differ."
            )
        for letter in letters:
            if f"({letter})" not in row["question"]:
                raise LayerdriftError(
                    f"behaviour set {str(path)!r}, item {number}: the question never offers choice "
                    f"({letter}); write the choices into the question."
                )
        items.append(BehaviourItem(row["question"], letters[0], letters[1]))
    name = path.stem
    return BehaviourSet(name, str(path), tuple(items))


def render_question(item: BehaviourItem, template: str) -> str:
    """The prompt text before the answer (the chat template, if any, wraps this as the user turn)."""
    return template.format(question=item.question)
