"""Each variant's read-out (final norm and unembedding) kept in the run folder, so the lens never loads a model twice.

Layout::

    RUN/heads/VARIANT.json            identity of the variant it was read from, sha256 of its weights file, norm kind
    RUN/heads/SHA256.safetensors      the weights (safetensors, no pickle), stored once however many variants share them
    RUN/heads/tokens-SHA256.json      a tokenizer's vocabulary as text, by the tokenizer's fingerprint

Quantized copies share their reference's unembedding (bitsandbytes leaves ``lm_head`` and the embeddings alone), so
the default run stores two heads for four variants. A head read back is checked against its sha256: a damaged or
missing file, or one read from other weights, is read again from the model.
"""

from __future__ import annotations

from typing import Any

import torch

from layerdrift.analyses.lens import LensHead
from layerdrift.core.files import atomic_path, read_json_or_none, write_json_atomic
from layerdrift.core.hashing import bytes_sha256
from layerdrift.core.objectstore import RunPath
from layerdrift.workbench.models.heads import read_lens_head, vocabulary_text

HEADS = "heads"
TENSORS = ("unembed", "norm_weight", "norm_bias", "unembed_bias")


def _record_path(root: RunPath, variant: str) -> RunPath:
    return root / HEADS / f"{variant}.json"


def _sha_or_none(path: RunPath) -> str | None:
    try:
        return bytes_sha256(path.read_bytes())
    except FileNotFoundError:
        return None


def save_head(root: RunPath, variant: str, identity: str, head: LensHead) -> str:
    """Write a variant's head (its weights once per content); returns their sha256."""
    from safetensors.torch import save

    tensors = {k: t.contiguous() for k in TENSORS if (t := getattr(head, k)) is not None}
    data = save(tensors)
    sha = bytes_sha256(data)
    weights = root / HEADS / f"{sha}.safetensors"
    if _sha_or_none(weights) != sha:  # absent, or damaged since: written (again)
        with atomic_path(weights) as tmp:
            tmp.write_bytes(data)
    record = {"identity": identity, "sha256": sha, "norm_kind": head.norm_kind, "eps": head.eps}
    write_json_atomic(_record_path(root, variant), record | {"softcap": head.softcap})
    return sha


def read_head(root: RunPath, variant: str, identity: str) -> tuple[LensHead, str] | None:
    """A variant's stored head and the sha256 of its weights, or None when it was never stored, was read from other
    weights (``identity``), or its file is missing or damaged."""
    from safetensors.torch import load

    record: dict[str, Any] | None = read_json_or_none(_record_path(root, variant))
    if not record or record.get("identity") != identity:
        return None
    try:
        data = (root / HEADS / f"{record['sha256']}.safetensors").read_bytes()
    except FileNotFoundError:
        return None
    if bytes_sha256(data) != record["sha256"]:
        return None
    tensors: dict[str, torch.Tensor] = load(data)
    head = LensHead(
        **{k: tensors.get(k) for k in TENSORS},
        norm_kind=record["norm_kind"],
        eps=float(record["eps"]),
        softcap=record["softcap"],
    )
    return head, record["sha256"]


def _tokens_path(root: RunPath, tokenizer_sha256: str) -> RunPath:
    return root / HEADS / f"tokens-{tokenizer_sha256[:16]}.json"


def save_tokens(root: RunPath, tokenizer_sha256: str, tokens: list[str]) -> None:
    """A tokenizer's vocabulary as text (id -> the id decoded alone), once per tokenizer."""
    write_json_atomic(_tokens_path(root, tokenizer_sha256), {"tokenizer_sha256": tokenizer_sha256, "tokens": tokens})


def read_tokens(root: RunPath, tokenizer_sha256: str) -> list[str] | None:
    """A stored vocabulary as text, or None when missing, damaged or of another tokenizer."""
    data = read_json_or_none(_tokens_path(root, tokenizer_sha256))
    ok = isinstance(data, dict) and data.get("tokenizer_sha256") == tokenizer_sha256
    return list(data["tokens"]) if ok and isinstance(data.get("tokens"), list) else None


def keep_variant_head(
    root: RunPath, variant: str, identity: str, model: Any, tokenizer: Any, tokenizer_sha256: str
) -> None:
    """Read a loaded variant's head and vocabulary and keep them, unless the run folder holds them intact already
    (the capture calls this when the config asks for the lens, so no model is loaded twice)."""
    if read_head(root, variant, identity) is None:
        save_head(root, variant, identity, read_lens_head(model, variant))
    if read_tokens(root, tokenizer_sha256) is None:
        save_tokens(root, tokenizer_sha256, vocabulary_text(tokenizer))
