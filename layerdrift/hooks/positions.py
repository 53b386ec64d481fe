"""Token positions to capture: the last real token, a named substring, an index, or all tokens.

Spec strings (as written in configs):
  ``last``           the last real (non-pad) token
  ``all``            every real token (arrays become ``(n, max_len, d)`` with zero padding)
  ``index:N``        real token N (negative counts from the end)
  ``match:TEXT``     the last token overlapping the first occurrence of TEXT; TEXT may use
                     ``{term}``, filled per prompt (``match:{term}`` = the concept's last token)
"""

from __future__ import annotations

from dataclasses import dataclass

from layerdrift.core.naming import safe_name
from layerdrift.errors import LayerdriftError


@dataclass(frozen=True)
class PositionSpec:
    """A parsed position spec; ``kind`` is one of last, all, index, match."""

    kind: str
    arg: str | int | None = None

    @property
    def spec(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"

    @property
    def folder(self) -> str:
        """A filesystem-safe name for this position's arrays."""

        return safe_name(self.spec.replace(":", "-").replace("{", "").replace("}", ""))


def parse_position(spec: str) -> PositionSpec:
    """Parse ``last`` / ``all`` / ``index:N`` / ``match:TEXT``; ValueError names the bad spec."""
    if spec in ("last", "all"):
        return PositionSpec(spec)
    kind, sep, arg = spec.partition(":")
    if sep and kind == "index":
        try:
            return PositionSpec("index", int(arg))
        except ValueError:
            raise ValueError(f"position {spec!r}: index must be an integer, e.g. 'index:-2'") from None
    if sep and kind == "match" and arg:
        return PositionSpec("match", arg)
    raise ValueError(f"unknown position {spec!r}; use 'last', 'all', 'index:N' or 'match:TEXT'")


def resolve_position(
    pos: PositionSpec, text: str, offsets: list[tuple[int, int]], term: str | None, where: str
) -> list[int]:
    """Real-token indices (0-based, no padding) that ``pos`` selects in one encoded prompt.

    ``offsets`` are the character spans of each token in ``text``; ``where`` names the prompt
    for error messages.
    """
    n = len(offsets)
    if pos.kind == "last":
        return [n - 1]
    if pos.kind == "all":
        return list(range(n))
    if pos.kind == "index":
        i = int(pos.arg)  # type: ignore[arg-type]
        j = i if i >= 0 else n + i
        if not 0 <= j < n:
            raise LayerdriftError(
                f"position 'index:{i}' is outside {where}, which has {n} tokens; pick an index in [{-n}, {n - 1}]."
            )
        return [j]
    needle = str(pos.arg).replace("{term}", term or "")
    start = text.find(needle)
    if not needle or start < 0:
        raise LayerdriftError(
            f"position '{pos.spec}' looks for {needle!r}, which does not occur in {where}; "
            "fix the template or the position."
        )
    end = start + len(needle)
    hits = [k for k, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
    if not hits:
        raise LayerdriftError(
            f"position '{pos.spec}': no token covers {needle!r} in {where}; the tokenizer "
            "gives no character offsets for it."
        )
    return [hits[-1]]
