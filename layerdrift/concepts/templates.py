"""Prompt-template ensembles: several frames for the same terms, so a finding can be checked against the template.

A reviewer's first question about a drift measured with one template is whether the result is the template's. The
built-in ``default`` ensemble keeps the seed study's template and adds three that change, one at a time, what a
template can change:

1. ``The concept of {term} is`` -- the EmbeddingDrift seed template: a predicate about the concept, read at ``is``
   right after the term.
2. ``The word "{term}" means`` -- a *mention* rather than a use: the term quoted as a word, read at a different
   verb (``means``) two tokens after it; lexical rather than conceptual framing.
3. ``Q: What is {term}?\\nA:`` -- the question-answer frame instruction-tuned models are trained on, read at the
   answer cue (``A:``) on a new line, several tokens after the term.
4. ``{term}`` -- no frame at all: read at the term's own last token, the representation of the term itself.

Together they vary the read-out token, the distance from the term to it, the register (predicate, mention,
question) and whether there is a frame at all, while every one leaves the term's category to the term alone.
"""

from __future__ import annotations

from layerdrift.errors import LayerdriftError

ENSEMBLES: dict[str, tuple[str, ...]] = {
    "default": (
        "The concept of {term} is",
        'The word "{term}" means',
        "Q: What is {term}?\nA:",
        "{term}",
    ),
}


def template_ensemble(templates: str | list[str]) -> list[str]:
    """The templates of an ensemble: a built-in one by name, or the list as given."""
    if isinstance(templates, str):
        if templates not in ENSEMBLES:
            raise LayerdriftError(
                f"there is no built-in template ensemble {templates!r}; built-in: {', '.join(ENSEMBLES)}, "
                "or give a list of templates."
            )
        return list(ENSEMBLES[templates])
    return list(templates)


def template_set_name(prompt_set: str, number: int) -> str:
    """The captured prompt set of template ``number`` (1-based) of an ensemble: the first keeps the set's own name,
    so every analysis of the set reads the first template; the others are ``NAME.tN``."""
    return prompt_set if number == 1 else f"{prompt_set}.t{number}"
