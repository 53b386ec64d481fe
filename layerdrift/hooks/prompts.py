"""Turn prompt strings into token ids for one tokenizer: chat template, BOS policy, offsets, padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Int
from transformers import PreTrainedTokenizerBase

from layerdrift.errors import LayerdriftError


@dataclass(frozen=True)
class EncodedPrompt:
    """One prompt as the model sees it: the exact text, ids, and each token's character span."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]

    def tokens(self, tokenizer: PreTrainedTokenizerBase) -> list[str]:
        return tokenizer.convert_ids_to_tokens(self.ids)


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, chat_template: bool, response: str = "") -> str:
    """The prompt (+ the start of a response), or the prompt wrapped as one user turn by the chat template, then the
    response."""
    if not chat_template:
        return prompt + response
    if not getattr(tokenizer, "chat_template", None):
        raise LayerdriftError(
            "chat_template = true, but this variant's tokenizer has no chat template; set chat_template = false for it."
        )
    turn = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return turn + response.lstrip()


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    chat_template: bool = False,
    prepend_bos: Literal["auto", "yes", "no"] = "auto",
    response: str = "",
) -> EncodedPrompt:
    """Tokenize one prompt (+ ``response`` text after it) with offsets; ``prepend_bos`` forces BOS on or off ("auto":
    tokenizer default)."""
    if not getattr(tokenizer, "is_fast", False):
        raise LayerdriftError(
            "this variant's tokenizer is a slow (Python) tokenizer without character "
            "offsets; load a fast tokenizer (tokenizer.json) for it."
        )
    text = format_prompt(tokenizer, prompt, chat_template, response)
    enc = tokenizer(text, add_special_tokens=not chat_template, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    bos = tokenizer.bos_token_id
    if prepend_bos == "yes" and (not ids or ids[0] != bos):
        if bos is None:
            raise LayerdriftError(
                "prepend_bos = 'yes', but this variant's tokenizer defines no BOS token; use 'auto' or 'no'."
            )
        ids, offsets = [bos] + ids, [(0, 0)] + offsets
    elif prepend_bos == "no" and ids and bos is not None and ids[0] == bos:
        ids, offsets = ids[1:], offsets[1:]
    if not ids:
        raise LayerdriftError(f"prompt {prompt!r} tokenizes to nothing; check the template and the term.")
    return EncodedPrompt(text=text, ids=ids, offsets=offsets)  # type: ignore[arg-type]


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id used for padding: pad, else EOS, else 0 (masked out either way)."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def pad_batch(
    prompts: list[EncodedPrompt], pad_token_id: int, side: Literal["left", "right"] = "right"
) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"], list[int]]:
    """Pad a batch; returns ids, attention mask, and each row's shift (padded index = real index + shift)."""
    width = max(len(p.ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    shifts = []
    for row, p in enumerate(prompts):
        shift = width - len(p.ids) if side == "left" else 0
        ids[row, shift : shift + len(p.ids)] = torch.tensor(p.ids)
        mask[row, shift : shift + len(p.ids)] = 1
        shifts.append(shift)
    return ids, mask, shifts
