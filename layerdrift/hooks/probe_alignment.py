"""Align the prompts of a probe set token by token for one tokenizer, by their template segments.

Each token belongs to the template segment that holds its last character (special tokens before
the text form a prefix). Each segment gets as many aligned *slots* as it has tokens in most
prompts. A prompt whose segment has another number of tokens (``23rd`` is four tokens, ``1st``
three) is aligned right-justified within the segment: the segment's last token always sits in
its last slot, so landmarks (the last token of their segment) line up exactly, and a shorter
segment repeats its first token in the leading slots. The share of prompts aligned exactly is
kept per slot. A prompt where a segment gets no token of its own (merged into a neighbour) cannot
be aligned and is rejected by name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from layerdrift.concepts.probes import ProbeItem, ProbeSet, Segment
from layerdrift.errors import LayerdriftError
from layerdrift.hooks.prompts import encode_prompt

MAX_REJECTED = 0.25  # more rejected prompts than this share is an error, not a note


@dataclass
class ProbeAlignment:
    """Aligned token slots of a probe set in one tokenizer."""

    slots: list[str]  # slot labels: token text for literal text, {field} (or {field}#i) for fields
    index: list[list[int]]  # per kept prompt: the token index of each slot
    ids: list[list[int]]  # per kept prompt: its token ids
    kept: list[int]  # indices of the kept prompts in the probe set
    exact: list[float]  # per slot: share of kept prompts whose segment has the usual token count
    landmarks: dict[str, int]  # landmark name -> slot
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index", "prompt", "reason"}

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("slots", "index", "ids", "kept", "exact", "landmarks", "rejected")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeAlignment:
        return cls(**{k: data[k] for k in ("slots", "index", "ids", "kept", "exact", "landmarks", "rejected")})


def _token_segments(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Segment index of each token (by its last character); -1 for special tokens before the text."""
    ends = np.asarray([e for _, e in spans])
    out = []
    for start, end in offsets:
        if end <= start:
            out.append(-1 if not out or out[-1] == -1 else out[-1])
        else:
            out.append(int(np.searchsorted(ends, end - 1, side="right")))
    return out


def align_probes(
    tokenizer: Any, probes: ProbeSet, prepend_bos: Literal["auto", "yes", "no"] = "auto", variant: str = "this variant"
) -> ProbeAlignment:
    """Slots, per-prompt token indices and landmark slots of ``probes`` in ``tokenizer`` (no chat template: raw
    text).

    Each template segment (-1: the start) gets the modal number of tokens it takes over the prompts; a slot is
    one of those tokens. A prompt where a segment has no token of its own is rejected (more than
    ``MAX_REJECTED`` of them refuse the set); a segment with more tokens than modal is read at its last ones.
    """
    segments = probes.segments()
    per_prompt = [_tokenized(tokenizer, probes, item, prepend_bos) for item in probes.items]
    keys = [-1, *range(len(segments))]
    modal = {s: Counter(len(g.get(s, [])) for _, _, g in per_prompt).most_common(1)[0][0] for s in keys}
    for name, where in probes.landmarks.items():
        if modal[_landmark_segment(segments, name)] == 0:
            raise LayerdriftError(
                f"probe set '{probes.name}': in {variant} the landmark {name!r} ({where}) has no "
                "token of its own (it merges into a neighbour); rewrite the template so it is a "
                "separate word."
            )
    slots, slot_segment, slot_offset = _slots(tokenizer, segments, per_prompt, modal)
    index, ids, kept, rejected = [], [], [], []
    exact = np.zeros(len(slots))
    for i, (text, tok_ids, groups) in enumerate(per_prompt):
        empty = [s for s in keys if modal[s] > 0 and not groups.get(s)]
        if empty:
            rejected.append(
                {"index": i, "prompt": text, "reason": f"{_segment_label(segments, empty[0])} has no token of its own"}
            )
            continue
        row = []
        for k, (s, j) in enumerate(zip(slot_segment, slot_offset)):
            g = groups[s]
            row.append(g[max(0, j - modal[s] + len(g))])
            exact[k] += len(g) == modal[s]
        index.append(row)
        ids.append(tok_ids)
        kept.append(i)
    if len(rejected) > MAX_REJECTED * len(per_prompt):
        first = rejected[0]
        raise LayerdriftError(
            f"probe set '{probes.name}': {len(rejected)} of {len(per_prompt)} prompts do not "
            f"tokenize to the template's structure in {variant} "
            f"(first: prompt {first['index'] + 1}, {first['prompt']!r}: {first['reason']}); "
            "change the template or the field values so each part gets its own tokens."
        )
    landmarks = {
        name: max(k for k, seg in enumerate(slot_segment) if seg == _landmark_segment(segments, name))
        for name in probes.landmarks
    }
    return ProbeAlignment(slots, index, ids, kept, (exact / max(len(kept), 1)).tolist(), landmarks, rejected)


def _tokenized(
    tokenizer: Any, probes: ProbeSet, item: ProbeItem, prepend_bos: Literal["auto", "yes", "no"]
) -> tuple[str, list[int], dict[int, list[int]]]:
    """One prompt's text, token ids and the token indices of each template segment."""
    text, spans = probes.render(item)
    enc = encode_prompt(tokenizer, text, False, prepend_bos)
    groups: dict[int, list[int]] = {}
    for t, s in enumerate(_token_segments(enc.offsets, spans)):
        groups.setdefault(s, []).append(t)
    return text, enc.ids, groups


def _landmark_segment(segments: list[Segment], name: str) -> int:
    return next(i for i, seg in enumerate(segments) if seg.landmark == name)


def _segment_label(segments: list[Segment], s: int) -> str:
    """How a segment is named to a user: the start, a {field} or the template's text."""
    if s == -1:
        return "the start"
    return f"{{{segments[s].key}}}" if segments[s].kind == "field" else repr(segments[s].key)


def _slots(
    tokenizer: Any, segments: list[Segment], per_prompt: list[tuple[str, list[int], dict]], modal: dict[int, int]
) -> tuple[list[str], list[int], list[int]]:
    """Slot names (a field's ``{name}#j`` or the decoded text token of a prompt with the modal structure), with
    each slot's segment and its offset in the segment."""
    keys = list(modal)
    example = next((g for _, _, g in per_prompt if all(len(g.get(s, [])) == modal[s] for s in keys)), per_prompt[0][2])
    example_ids = per_prompt[[g for _, _, g in per_prompt].index(example)][1]
    slots, slot_segment, slot_offset = [], [], []
    for s in keys:
        m = modal[s]
        for j in range(m):
            if s >= 0 and segments[s].kind == "field":
                slots.append(f"{{{segments[s].key}}}" + (f"#{j + 1}" if m > 1 else ""))
            else:
                slots.append(tokenizer.decode([example_ids[example[s][j]]]))
            slot_segment.append(s)
            slot_offset.append(j)
    return slots, slot_segment, slot_offset
