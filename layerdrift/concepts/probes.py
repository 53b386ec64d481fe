"""Templated probe sets: prompts of one fixed structure, each with a numeric label and named landmarks.

A probe set is a template with ``{field}`` slots (``"{name} was born on the {day} of {month}. ..."``),
items that fill the fields and carry a label (day of year, month index, a count), the shape the
label is expected to take in the model (circular with a period, discrete circular, linear,
cluster), and landmarks: named places in the template (``source = "{month}"``, ``destination =
"birthday"``) that the alignment locates in each tokenizer. A landmark is a field (its first
occurrence) or a word of the template's text (its last occurrence).

Three sets are generated here, deterministically from a seed: ``birthday`` (day of year,
circular, period 365), ``months`` (month index, discrete circular, period 12) and ``numbers``
(a count from 1 to 99, linear). A user set is a JSON file with the same fields and an ``items`` list.
"""

from __future__ import annotations

import calendar
import json
import re
import string
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from layerdrift.errors import LayerdriftError

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SHAPES = ("circular", "discrete_circular", "linear", "cluster")
NAMES = (
    "Mary",
    "Anna",
    "Emma",
    "Sarah",
    "Laura",
    "Lucy",
    "Alice",
    "Julia",
    "Rachel",
    "Helen",
    "Emily",
    "Grace",
    "Sophie",
    "Claire",
    "Hannah",
    "Kate",
    "Rose",
    "Jane",
    "Linda",
    "Nina",
    "Olivia",
    "Paula",
    "Ruth",
    "Susan",
    "Diana",
    "Eva",
    "Fiona",
    "Irene",
    "Lisa",
    "Maria",
)
MONTHS = tuple(calendar.month_name[1:])


def ordinal(day: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


@dataclass(frozen=True)
class ProbeItem:
    fields: dict[str, str]
    label: float


@dataclass(frozen=True)
class Segment:
    """A piece of the template: a field or literal text; ``landmark`` names it if it is one."""

    kind: str  # "field" | "text"
    key: str  # the field name, or the literal text
    landmark: str | None = None


@dataclass(frozen=True)
class ProbeSet:
    name: str
    source: str
    template: str
    shape: str
    period: float | None
    landmarks: dict[str, str]
    items: tuple[ProbeItem, ...]
    description: str = ""

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([i.label for i in self.items], dtype=np.float64)

    def segments(self) -> list[Segment]:
        """The template cut at its fields and around each landmark word."""
        pieces: list[Segment] = []
        pos = 0
        for m in FIELD.finditer(self.template):
            if m.start() > pos:
                pieces.append(Segment("text", self.template[pos : m.start()]))
            pieces.append(Segment("field", m.group(1)))
            pos = m.end()
        if pos < len(self.template):
            pieces.append(Segment("text", self.template[pos:]))
        for name, where in self.landmarks.items():
            field = FIELD.fullmatch(where)
            if field:
                i = next(i for i, s in enumerate(pieces) if s.kind == "field" and s.key == field.group(1))
                pieces[i] = Segment("field", pieces[i].key, name)
                continue
            i = max(i for i, s in enumerate(pieces) if s.kind == "text" and where in s.key)
            text = pieces[i].key
            cut = text.rfind(where)
            parts = [
                Segment("text", text[:cut]),
                Segment("text", where, name),
                Segment("text", text[cut + len(where) :]),
            ]
            pieces[i : i + 1] = [p for p in parts if p.key]
        return pieces

    def render(self, item: ProbeItem) -> tuple[str, list[tuple[int, int]]]:
        """The prompt text and each segment's character span in it."""
        text, spans = "", []
        for seg in self.segments():
            piece = item.fields[seg.key] if seg.kind == "field" else seg.key
            spans.append((len(text), len(text) + len(piece)))
            text += piece
        return text, spans

    def prompts(self) -> list[str]:
        return [self.render(i)[0] for i in self.items]


def _check(ps: ProbeSet, where: str) -> ProbeSet:
    """One sentence for the first thing wrong with a probe set."""
    fields = set(FIELD.findall(ps.template))
    if not fields:
        raise LayerdriftError(
            f"{where}: the template has no {{field}}; write the varying parts as {{name}}, {{month}}, ..."
        )
    if ps.shape not in SHAPES:
        raise LayerdriftError(f"{where}: shape {ps.shape!r} is not one of {', '.join(SHAPES)}.")
    if ps.shape in ("circular", "discrete_circular") and not (ps.period and ps.period > 0):
        raise LayerdriftError(
            f"{where}: the {ps.shape} shape needs a positive 'period' (e.g. 365 for a day of the year)."
        )
    if "source" not in ps.landmarks:
        raise LayerdriftError(
            f"{where}: landmarks must name a 'source' (the field that carries the label, e.g. \"{{month}}\")."
        )
    literal = "".join(FIELD.split(ps.template)[0::2])
    for name, spot in ps.landmarks.items():
        m = FIELD.fullmatch(spot)
        if m and m.group(1) not in fields:
            raise LayerdriftError(f"{where}: landmark {name!r} names the field {spot}, which is not in the template.")
        if not m and (not spot.strip() or not any(spot in piece for piece in FIELD.split(ps.template)[0::2])):
            raise LayerdriftError(
                f"{where}: landmark {name!r} is {spot!r}, which is neither a {{field}} nor a "
                f"piece of the template's own text ({literal[:60]!r}...)."
            )
    if len(set(ps.landmarks.values())) != len(ps.landmarks):
        raise LayerdriftError(f"{where}: two landmarks point at the same place; give each its own field or word.")
    if len(ps.items) < 10:
        raise LayerdriftError(
            f"{where}: {len(ps.items)} items are too few; a probe set needs at least 10 (a "
            "few hundred for a clear picture)."
        )
    for k, item in enumerate(ps.items, start=1):
        missing = fields - set(item.fields)
        if missing:
            raise LayerdriftError(
                f"{where}, item {k}: no value for the field(s) {', '.join(sorted(missing))}; "
                "every item must fill every field of the template."
            )
        empty = [f for f in fields if not str(item.fields[f]).strip()]
        if empty:
            raise LayerdriftError(f"{where}, item {k}: the field {empty[0]!r} is empty; fill it with text.")
        if not np.isfinite(item.label):
            raise LayerdriftError(f"{where}, item {k}: the label is not a finite number.")
    if len(np.unique(ps.labels)) < 3:
        raise LayerdriftError(
            f"{where}: the items have fewer than 3 distinct labels; a shape cannot be fitted to them."
        )
    return ps


def birthday_set(n: int = 300, seed: int = 0) -> ProbeSet:
    """Birthdays on random days of a (non-leap) year; label = day of the year (0 = 1 January), circular with
    period 365."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 365, n)
    names = rng.choice(len(NAMES), n)
    items = []
    for d, k in zip(days, names):
        day = date(2023, 1, 1) + timedelta(days=int(d))
        items.append(ProbeItem({"name": NAMES[k], "day": ordinal(day.day), "month": MONTHS[day.month - 1]}, float(d)))
    return _check(
        ProbeSet(
            "birthday",
            "built-in",
            "{name} was born on the {day} of {month}. {name} plays volleyball. {name} lives "
            "with her family in a small town. {name} had a party on her birthday.",
            "circular",
            365.0,
            {"source": "{month}", "distractor": "volleyball", "destination": "birthday"},
            tuple(items),
            "day of the year of a birthday; is the date carried from the month to the word 'birthday'?",
        ),
        "probe set 'birthday'",
    )


def months_set(n: int = 300, seed: int = 0) -> ProbeSet:
    """A favourite month; label = month index (0 = January), discrete circular with period 12."""
    rng = np.random.default_rng(seed + 1)
    months, names = rng.integers(0, 12, n), rng.choice(len(NAMES), n)
    items = tuple(ProbeItem({"name": NAMES[k], "month": MONTHS[m]}, float(m)) for m, k in zip(months, names))
    return _check(
        ProbeSet(
            "months",
            "built-in",
            "{name} said that her favourite month is {month}. She goes hiking with friends every year in that month.",
            "discrete_circular",
            12.0,
            {"source": "{month}", "distractor": "hiking", "destination": "month"},
            items,
            "a month of the year; is it kept at 'that month'?",
        ),
        "probe set 'months'",
    )


def numbers_set(n: int = 300, seed: int = 0) -> ProbeSet:
    """A count from 1 to 99; label = the count, linear."""
    rng = np.random.default_rng(seed + 2)
    counts, names = rng.integers(1, 100, n), rng.choice(len(NAMES), n)
    items = tuple(ProbeItem({"name": NAMES[k], "number": str(c)}, float(c)) for c, k in zip(counts, names))
    return _check(
        ProbeSet(
            "numbers",
            "built-in",
            "There were {number} apples in the basket. {name} took the basket home and counted the apples again.",
            "linear",
            None,
            {"source": "{number}", "distractor": "basket", "destination": "apples"},
            items,
            "a small count; is it carried to the second 'apples'?",
        ),
        "probe set 'numbers'",
    )


BUILTIN_PROBES = {"birthday": birthday_set, "months": months_set, "numbers": numbers_set}


def load_probe_set(name_or_path: str, n: int = 300, seed: int = 0) -> ProbeSet:
    """A built-in probe set (``n`` items generated from ``seed``) or a user JSON file (its first ``n`` items)."""
    if name_or_path in BUILTIN_PROBES:
        return BUILTIN_PROBES[name_or_path](n, seed)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise LayerdriftError(
            f"probe set {name_or_path!r} is neither a built-in ({', '.join(BUILTIN_PROBES)}) "
            "nor an existing JSON file; check the name or path."
        )
    where = f"probe set {str(path)!r}"
    data = _read_probe_json(path, where)
    period = data.get("period")
    if period is not None and (not isinstance(period, (int, float)) or isinstance(period, bool)):
        raise LayerdriftError(f"{where}: 'period' must be a number.")
    name = str(data.get("name") or path.stem)
    if not name or any(ch not in string.ascii_letters + string.digits + "_.-" for ch in name):
        raise LayerdriftError(f"{where}: name {name!r} may use only letters, digits, '_', '.' and '-'.")
    probe_set = ProbeSet(
        name,
        str(path),
        data["template"],
        data["shape"],
        float(period) if period is not None else None,
        {str(k): str(v) for k, v in data["landmarks"].items()},
        _probe_items(data["items"][:n], where),
        str(data.get("description", "")),
    )
    return _check(probe_set, where)


def _read_probe_json(path: Path, where: str) -> dict:
    """The probe set file's JSON object, with its four required fields of the right types and no unknown field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LayerdriftError(
            f"{where} is not valid UTF-8 JSON ({getattr(err, 'msg', type(err).__name__)}); "
            "write one JSON object with template, shape, landmarks and items."
        ) from None
    if not isinstance(data, dict):
        raise LayerdriftError(f"{where} must hold one JSON object with template, shape, landmarks and items.")
    for key, kind in (("template", str), ("shape", str), ("landmarks", dict), ("items", list)):
        if not isinstance(data.get(key), kind):
            raise LayerdriftError(
                f"{where} lacks a {kind.__name__} field {key!r}; it needs template, shape, "
                "landmarks and items (and period for circular shapes)."
            )
    unknown = set(data) - {"name", "template", "shape", "period", "landmarks", "items", "description"}
    if unknown:
        raise LayerdriftError(
            f"{where} has unknown field(s) {', '.join(sorted(unknown))}; allowed: name, "
            "template, shape, period, landmarks, items, description."
        )
    return data


def _probe_items(rows: list, where: str) -> tuple[ProbeItem, ...]:
    """Each JSON item as a ProbeItem; the first malformed one is refused by its number."""
    items = []
    for k, row in enumerate(rows, start=1):
        label = row.get("label") if isinstance(row, dict) else None
        if not (
            isinstance(row, dict)
            and isinstance(row.get("fields"), dict)
            and isinstance(label, (int, float))
            and not isinstance(label, bool)
        ):
            raise LayerdriftError(
                f"{where}, item {k}: expected an object with 'fields' (an object of strings) and a numeric 'label'."
            )
        items.append(ProbeItem({str(f): str(v) for f, v in row["fields"].items()}, float(label)))
    return tuple(items)
