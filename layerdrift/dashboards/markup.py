"""User data in Markdown and HTML: shown as text, never run as markup.

Terms, categories, notes, prompts, tokens, variant, model and file names come from users' files. Where
they meet a Markdown or HTML pane they go through ``md_text``: every character that Markdown or HTML
would read as syntax becomes a numeric character reference, which both render as the character
itself (CommonMark never parses an entity as syntax). ``md`` fills a Markdown template that way.
"""

from __future__ import annotations

MARKUP_CHARS = frozenset("\\`*_{}[]()#+-.!|~<>&\"'$:=")


def md_text(value: object) -> str:
    """``value`` as literal text inside Markdown or HTML: syntax characters become entities (&#60; for <)."""
    return "".join(f"&#{ord(ch)};" if ch in MARKUP_CHARS else ch for ch in str(value))


def md(template: str, **values: object) -> str:
    """Fill a Markdown ``template`` (str.format fields) with user data, each value escaped by ``md_text``."""
    return template.format(**{k: md_text(v) for k, v in values.items()})
