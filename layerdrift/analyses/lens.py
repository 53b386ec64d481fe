"""Reading the residual stream in output space: the logit lens and the divergences between next-token distributions.

The logit lens (nostalgebraist 2020) reads a residual point x through the model's own final norm and unembedding,
``logits = W_U norm(x) + b``, as if the network stopped there. Two read-outs per point:

- own lens: each variant through its own head (what this variant would predict from this layer);
- common lens: every variant through the reference's head, so that a difference between two variants at a layer
  is a difference of their residuals, said in output terms.

Known bias: the lens is the final layer's read-out, so early layers read poorly (high entropy, large KL to the
final distribution) for reasons unrelated to any variant; the tuned lens (Belrose et al. 2023, arXiv:2303.08112)
learns a per-layer affine translator to correct it. Compare variants at the same layer, never a layer with
another; a learned translator can later stand in front of ``LensHead.logits`` (``translate``).

Everything is exact over the full vocabulary and streamed: ``block`` rows of (rows, vocabulary) log-probabilities
at a time, never prompts x layers x vocabulary (Gemma's vocabulary has 262k tokens). Distributions are compared in
float64 log space; 0 log 0 counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

NORMS = ("rms", "rms_offset", "layer")
LN2 = math.log(2.0)
BLOCK_ELEMENTS = 2**24  # rows x vocabulary held at once per distribution (64 MiB of float32)


@dataclass(frozen=True)
class LensHead:
    """A variant's read-out: final norm, then unembedding.

    norm_kind  ``rms``: x / sqrt(mean(x^2) + eps) * w (Llama, SmolLM2); ``rms_offset``: the same times (1 + w)
               (Gemma); ``layer``: (x - mean) / sqrt(var + eps) * w + b (GPT-2)
    softcap    Gemma 2's final logit soft-capping, c * tanh(logits / c), or None
    """

    unembed: Float[Tensor, "vocab d"]
    norm_weight: Float[Tensor, " d"]
    norm_kind: str
    eps: float
    norm_bias: Float[Tensor, " d"] | None = None
    unembed_bias: Float[Tensor, " vocab"] | None = None
    softcap: float | None = None

    def __post_init__(self) -> None:
        if self.norm_kind not in NORMS:
            raise ValueError(f"norm_kind {self.norm_kind!r} is not one of {NORMS}")

    @property
    def vocab_size(self) -> int:
        return int(self.unembed.shape[0])

    def normalise(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        """The final norm, computed in float32 as the models do."""
        h = x.float()
        w = self.norm_weight.float()
        if self.norm_kind == "layer":
            h = h - h.mean(-1, keepdim=True)
            out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * w
            return out + self.norm_bias.float() if self.norm_bias is not None else out
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h * (1.0 + w) if self.norm_kind == "rms_offset" else h * w

    def logits(self, x: Float[Tensor, "n d"], normalised: bool = False) -> Float[Tensor, "n vocab"]:
        """Logits of residual rows (``normalised``: the rows are the final norm's output already)."""
        h = x.float() if normalised else self.normalise(x)
        out = h @ self.unembed.float().T
        if self.unembed_bias is not None:
            out = out + self.unembed_bias.float()
        if self.softcap is not None:
            out = self.softcap * torch.tanh(out / self.softcap)
        return out

    def log_probs(self, x: Float[Tensor, "n d"], normalised: bool = False) -> Float[Tensor, "n vocab"]:
        return torch.log_softmax(self.logits(x, normalised).double(), dim=-1)

    def to(self, device: str | torch.device) -> LensHead:
        move = {k: getattr(self, k) for k in ("unembed", "norm_weight", "norm_bias", "unembed_bias")}
        moved = {k: None if v is None else v.to(device) for k, v in move.items()}
        return LensHead(**moved, norm_kind=self.norm_kind, eps=self.eps, softcap=self.softcap)


def entropy(logp: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """H(p) = -sum p log p (nats)."""
    return -(logp.exp() * logp).nan_to_num(0.0).sum(-1)


def kl(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """KL(p || q) = sum p (log p - log q) (nats); terms where p = 0 count 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1).clamp_min(0.0)


def _kl_to_mixture(logp: Tensor, logq: Tensor) -> Tensor:
    """KL(p || m), m = (p + q) / 2, from log(m / p) = log1p(expm1(log q - log p) / 2): exactly 0 where q = p."""
    p = logp.exp()
    ratio = torch.log1p(torch.expm1(logq - logp) / 2)
    return torch.where(p > 0, -p * ratio, torch.zeros_like(p)).sum(-1)


def js(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """Jensen-Shannon divergence (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2: symmetric, in [0, ln 2] nats,
    exactly 0 between equal distributions."""
    return (0.5 * (_kl_to_mixture(logp, logq) + _kl_to_mixture(logq, logp))).clamp(0.0, LN2)


def rank_of(logq: Float[Tensor, "n vocab"], tokens: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """The rank of each row's ``token`` under q (0 = q's own top token; ties counted in the token's favour)."""
    own = logq.gather(1, tokens[:, None])
    return (logq > own).sum(-1)


def row_blocks(n: int, vocab: int, block: int | None = None) -> Iterator[slice]:
    """Slices of rows small enough that a (rows, vocabulary) block stays under ``BLOCK_ELEMENTS``."""
    step = block or max(1, BLOCK_ELEMENTS // max(vocab, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


@dataclass
class OwnLens:
    """A variant's own-lens read-out at every point: entropy, KL to its own final distribution, top-k tokens."""

    entropy: Float[np.ndarray, "points n"]
    kl_to_final: Float[np.ndarray, "points n"]
    top_ids: Int[np.ndarray, "points n k"]
    top_probs: Float[np.ndarray, "points n k"]


def own_lens(
    head: LensHead,
    xs: Float[np.ndarray, "points n d"],
    normalised: list[bool],
    k: int = 5,
    block: int | None = None,
    device: str = "cpu",
) -> OwnLens:
    """Per point and row: H(p_l), KL(p_final || p_l) (the final point is the last of ``xs``) and the top-k tokens of
    p_l, where p_l = softmax(head(x_l)). ``normalised[l]``: point l is the final norm's output already."""
    points, n, _ = xs.shape
    out = OwnLens(
        np.zeros((points, n)), np.zeros((points, n)), np.zeros((points, n, k), np.int64), np.zeros((points, n, k))
    )
    head = head.to(device)
    for rows in row_blocks(n, head.vocab_size, block):
        final = head.log_probs(torch.as_tensor(xs[-1, rows], device=device), normalised[-1])
        for layer in range(points):
            x = torch.as_tensor(xs[layer, rows], device=device)
            logp = final if layer == points - 1 else head.log_probs(x, normalised[layer])
            out.entropy[layer, rows] = entropy(logp).cpu().numpy()
            out.kl_to_final[layer, rows] = kl(final, logp).cpu().numpy()
            top = torch.topk(logp, k, dim=-1)
            out.top_ids[layer, rows] = top.indices.cpu().numpy()
            out.top_probs[layer, rows] = top.values.exp().cpu().numpy()
    return out


def paired_points(
    head_a: LensHead,
    xs_a: Float[np.ndarray, "points n d"],
    head_b: LensHead,
    xs_b: Float[np.ndarray, "points n d"],
    normalised: list[bool],
    measure: Callable[[Tensor, Tensor], dict[str, Tensor]],
    block: int | None = None,
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """``measure(log p_a, log p_b)`` at every point and row, p_a = softmax(head_a(x_a)), p_b likewise: each of its
    entries as a (points, n) array."""
    points, n, _ = xs_a.shape
    head_a, head_b = head_a.to(device), head_b.to(device)
    out: dict[str, np.ndarray] = {}
    for rows in row_blocks(n, head_a.vocab_size, block):
        for layer in range(points):
            logp = head_a.log_probs(torch.as_tensor(xs_a[layer, rows], device=device), normalised[layer])
            logq = head_b.log_probs(torch.as_tensor(xs_b[layer, rows], device=device), normalised[layer])
            for name, values in measure(logp, logq).items():
                out.setdefault(name, np.zeros((points, n)))[layer, rows] = values.double().cpu().numpy()
    return out


def divergence(logp: Tensor, logq: Tensor) -> dict[str, Tensor]:
    """The common-lens comparison: JS(p, q)."""
    return {"js": js(logp, logq)}


def behaviour(logp: Tensor, logq: Tensor) -> dict[str, Tensor]:
    """Two next-token distributions compared: JS(p, q), KL(p || q), whether their top tokens agree, and the rank
    of p's top token under q."""
    top_p, top_q = logp.argmax(-1), logq.argmax(-1)
    return {
        "js": js(logp, logq),
        "kl": kl(logp, logq),
        "top1_agree": (top_p == top_q).double(),
        "rank_of_top": rank_of(logq, top_p).double(),
    }
