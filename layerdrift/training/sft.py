"""The pieces of supervised fine-tuning: chat formatting, response masks, the loss, batch order, checkpoint steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from transformers import PreTrainedTokenizerBase

from layerdrift.concepts.instructions import Example
from layerdrift.errors import LayerdriftError

# Used only when a tokenizer has no chat template of its own; saved into every checkpoint's tokenizer.
GEMMA_TURNS = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PLAIN_TURNS = (
    "{{ bos_token }}{% for m in messages %}{{ 'User' if m['role'] == 'user' else 'Assistant' }}: {{ m['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    """How a conversation is written for one tokenizer: which template, and what closes a response."""

    name: str
    response_prefix: str
    end_text: str


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> ChatFormat:
    """Use the tokenizer's chat template, or give it Gemma's turn markers (when its vocabulary has them) or a plain
    User/Assistant one."""
    vocab = tokenizer.get_vocab()
    if getattr(tokenizer, "chat_template", None):
        name = "tokenizer"
    elif "<start_of_turn>" in vocab and "<end_of_turn>" in vocab:
        tokenizer.chat_template, name = GEMMA_TURNS, "gemma-turns"
    else:
        tokenizer.chat_template, name = PLAIN_TURNS, "user-assistant"
    if name == "gemma-turns" or "<end_of_turn>" in str(tokenizer.chat_template):
        return ChatFormat(name, "", "<end_of_turn>")
    if tokenizer.eos_token is None:
        raise LayerdriftError(
            "the tokenizer has no EOS token to end a response with; set eos_token on the "
            "tokenizer or use a model that has one."
        )
    return ChatFormat(name, " " if name == "user-assistant" else "", tokenizer.eos_token)


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of prompt + response, and how many leading ids are the (unscored) prompt."""

    ids: list[int]
    n_prompt: int


def encode_example(
    tokenizer: PreTrainedTokenizerBase, fmt: ChatFormat, example: Example, max_length: int
) -> EncodedExample | None:
    """The chat-formatted example; the response is cut to fit ``max_length``; None when the prompt alone leaves
    no room."""
    prompt_text = tokenizer.apply_chat_template(
        [{"role": "user", "content": example.prompt}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(fmt.response_prefix + example.response.strip() + fmt.end_text, add_special_tokens=False)[
        "input_ids"
    ]
    room = max_length - len(prompt_ids)
    if room < 2:
        return None
    return EncodedExample(list(prompt_ids) + list(response_ids[:room]), len(prompt_ids))


def collate(
    batch: list[EncodedExample], pad_token_id: int
) -> tuple[Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"], Int[torch.Tensor, "b t"], Bool[torch.Tensor, "b t"]]:
    """Left-padded ids, attention mask, position ids and the response mask (True where a token is scored)."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    scored = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, e in enumerate(batch):
        shift = width - len(e.ids)
        ids[row, shift:] = torch.tensor(e.ids)
        mask[row, shift:] = 1
        scored[row, shift + e.n_prompt :] = True
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions, scored


def response_loss(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, scored: torch.Tensor
) -> torch.Tensor:
    """Mean next-token cross-entropy over the response tokens only.

    Rows are left-padded, so every response ends the row: logits are computed only for the last
    ``k + 1`` positions (``logits_to_keep``), which spares the vocabulary projection on prompt tokens.
    """
    k = int(scored.sum(1).max())
    if k == 0:
        raise LayerdriftError("a batch has no response tokens to score; check max_length against the prompt lengths.")
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=k + 1).logits
    pred = logits[:, :-1].float()
    target = ids[:, -k:]
    keep = scored[:, -k:]
    return torch.nn.functional.cross_entropy(pred[keep], target[keep])


def checkpoint_steps(steps: int, schedule: str | list[int]) -> list[int]:
    """``dense-early``: 0, 1, 2, 4, 8, ... and the last step; ``every-N``: 0, N, 2N, ...; or an explicit list."""
    if isinstance(schedule, list):
        chosen = sorted(set(schedule))
        bad = [s for s in chosen if not 0 <= s <= steps]
        if bad:
            raise LayerdriftError(f"checkpoint step {bad[0]} is outside 0..{steps}; list steps between 0 and `steps`.")
        return chosen
    if schedule == "dense-early":
        out, s = [0], 1
        while s < steps:
            out.append(s)
            s *= 2
        return out + [steps]
    if schedule.startswith("every-") and schedule[6:].isdigit() and int(schedule[6:]) > 0:
        n = int(schedule[6:])
        return sorted(set(range(0, steps + 1, n)) | {steps})
    raise LayerdriftError(f"checkpoint schedule {schedule!r} is not 'dense-early', 'every-N' or a list of steps.")


def batch_order(n_examples: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """The example indices of every step, fixed by the seed: shuffled epochs, cut into batches (so a resumed run sees
    the
    same batches)."""
    rng = np.random.default_rng(seed)
    stream: list[int] = []
    while len(stream) < steps * batch_size:
        stream.extend(rng.permutation(n_examples).tolist())
    return [stream[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
