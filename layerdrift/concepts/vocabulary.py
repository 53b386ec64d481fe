"""Concept vocabularies: TSV/CSV files of term + category (+ optional notes, index), validated.

The 235-term, 4-category EmbeddingDrift vocabulary ships as ``embeddingdrift-235`` in its
original row order, so results line up with that study's stored embeddings.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from layerdrift.errors import LayerdriftError, LayerdriftWarning

DATA = Path(__file__).parent / "data"
BUILTIN_VOCABULARIES = {"embeddingdrift-235": DATA / "embeddingdrift-235.tsv"}
REQUIRED = ("term", "category")
OPTIONAL = ("notes", "index")
LONG_TERM_CHARS = 100  # a concept is a word or a short phrase: longer terms are warned about
MAX_TERM_CHARS = 1000  # and a term this long is certainly a mistake (a pasted paragraph): refused


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of terms with a category each."""

    name: str
    source: str
    terms: tuple[str, ...]
    categories: tuple[str, ...]
    notes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def category_names(self) -> list[str]:
        """Categories in order of first appearance."""
        return list(dict.fromkeys(self.categories))


def check_row(where: str, term: str, category: str) -> None:
    """One sentence for a row that cannot be a concept: empty, uncategorised, with a brace or line break, or absurdly
    long."""
    if not term:
        raise LayerdriftError(f"{where}: the term is empty; fill it in or delete the row.")
    if not category:
        raise LayerdriftError(f"{where}: term {term!r} has no category; give it one.")
    if any(ch in term for ch in "{}\n\r"):
        raise LayerdriftError(f"{where}: term {term!r} contains a brace or line break; remove it.")
    if len(term) > MAX_TERM_CHARS:
        raise LayerdriftError(
            f"{where}: the term is {len(term)} characters long (at most {MAX_TERM_CHARS}); a "
            "concept is a word or a short phrase, so shorten it."
        )


def load_vocabulary(name_or_path: str | Path) -> Vocabulary:
    """Load a built-in vocabulary by name, or a .tsv/.csv file; every problem names its line."""
    key = str(name_or_path)
    path = BUILTIN_VOCABULARIES.get(key, Path(key))
    if not path.is_file():
        raise LayerdriftError(
            f"vocabulary {key!r} is neither a built-in ({', '.join(BUILTIN_VOCABULARIES)}) "
            "nor an existing file; check the path."
        )
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    rows = _read_rows(path, delimiter)
    col = _header_columns(path, rows[0])
    terms, cats, notes = _read_terms(path, rows, col, delimiter)
    name = key if key in BUILTIN_VOCABULARIES else path.stem
    return Vocabulary(name=name, source=str(path), terms=terms, categories=cats, notes=notes)


def _read_rows(path: Path, delimiter: str) -> list[list[str]]:
    """The file's rows as UTF-8 text (a BOM allowed); refuses a non-UTF-8 or empty file."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise LayerdriftError(f"{path}:{line}: the file is not UTF-8 text; save it as UTF-8.") from None
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        raise LayerdriftError(
            f"{path}: the vocabulary is empty; it needs a header line 'term{delimiter}category' and one row per term."
        )
    return rows


def _header_columns(path: Path, header_row: list[str]) -> dict[str, int]:
    """Column name -> index; refuses an unknown column or a missing term/category column."""
    header = [h.strip().lower() for h in header_row]
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if unknown:
        raise LayerdriftError(
            f"{path}:1: unknown column {unknown[0]!r}; allowed columns are {', '.join(REQUIRED + OPTIONAL)}."
        )
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise LayerdriftError(f"{path}:1: the header has no {missing[0]!r} column; columns needed: term, category.")
    return {h: i for i, h in enumerate(header)}


def _read_terms(
    path: Path, rows: list[list[str]], col: dict[str, int], delimiter: str
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Terms, categories and notes of the data rows (blank rows skipped); each bad row is refused by its line."""
    terms: list[str] = []
    cats: list[str] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    long_terms: list[int] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(rows[0]):
            raise LayerdriftError(
                f"{path}:{lineno}: the row has {len(row)} fields but the header has "
                f"{len(rows[0])}; check the {'tabs' if delimiter == chr(9) else 'commas'}."
            )
        term = row[col["term"]].strip()
        cat = row[col["category"]].strip()
        check_row(f"{path}:{lineno}", term, cat)
        if len(term) > LONG_TERM_CHARS:
            long_terms.append(lineno)
        if term in seen:
            raise LayerdriftError(
                f"{path}:{lineno}: term {term!r} is a duplicate of line {seen[term]}; keep one of them."
            )
        seen[term] = lineno
        terms.append(term)
        cats.append(cat)
        notes.append(row[col["notes"]].strip() if "notes" in col else "")
    if not terms:
        raise LayerdriftError(f"{path}: the vocabulary has a header but no terms.")
    if long_terms:
        _warn_long_terms(path, long_terms)
    return tuple(terms), tuple(cats), tuple(notes)


def _warn_long_terms(path: Path, long_terms: list[int]) -> None:
    lines = ", ".join(str(n) for n in long_terms[:5]) + (" …" if len(long_terms) > 5 else "")
    warnings.warn(
        f"{path}: {len(long_terms)} term(s) are over {LONG_TERM_CHARS} characters (line "
        f"{lines}); each is captured as many tokens and read at its last one.",
        LayerdriftWarning,
        stacklevel=4,
    )


def render_prompts(vocabulary: Vocabulary, template: str) -> list[str]:
    """Fill ``{term}`` in the template for every term, in vocabulary order."""
    return [template.replace("{term}", term) for term in vocabulary.terms]
