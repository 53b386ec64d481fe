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
at a time, never prompts x layers x vocabulary (Gemma's vocabulary has 262k tokens). The read-outs at every point are
float32 log-probabilities (the logits are float32 already; entropy and KL to the final distribution are good to
about 1e-6 nats, and JS, second order in log q - log p, much better); next-token distributions are compared in
float64, where the KL between a model and its bfloat16 copy is 1e-7. 0 log 0 counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

NORMS = ("rms", "rms_offset", "layer")
LN2 = math.log(2.0)
BLOCK_ELEMENTS = 2**25  # log-probabilities held at once, over every distribution of a block (128 MiB of float32)


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

    def log_probs(
        self, x: Float[Tensor, "n d"], normalised: bool = False, dtype: torch.dtype = torch.float32
    ) -> Float[Tensor, "n vocab"]:
        return torch.log_softmax(self.logits(x, normalised).to(dtype), dim=-1)

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


def js(
    logp: Float[Tensor, "n vocab"],
    logq: Float[Tensor, "n vocab"],
    p: Float[Tensor, "n vocab"] | None = None,
    q: Float[Tensor, "n vocab"] | None = None,
) -> Float[Tensor, " n"]:
    """Jensen-Shannon divergence (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2: symmetric, in [0, ln 2] nats,
    exactly 0 between equal distributions (``p``, ``q``: their exps, when already at hand).

    With d = log q - log p and r = log(m / p) = log1p(expm1(d) / 2), log(m / q) = r - d, so
    JS = -(sum p r + sum q (r - d)) / 2: one expm1 and one log1p per token, exact at d = 0 and second order in d.
    d is clamped to [-60, 30] (no overflow, and no 0 * inf where one distribution is 0): past 30 the mass is q's,
    whose term q (r - d) = -q ln 2 stays exact, and p's term is off by at most p (d - 30) < e^-30 d."""
    p = logp.exp() if p is None else p
    q = logq.exp() if q is None else q
    d = (logq - logp).nan_to_num_(0.0, 30.0, -60.0).clamp_(-60.0, 30.0)  # nan: a token both give probability 0
    r = torch.expm1(d).mul_(0.5).log1p_()
    vecdot = torch.linalg.vecdot
    return (-0.5 * (vecdot(p, r) + vecdot(q, r) - vecdot(q, d))).clamp(0.0, LN2)


def rank_of(logq: Float[Tensor, "n vocab"], tokens: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """The rank of each row's ``token`` under q (0 = q's own top token; ties counted in the token's favour)."""
    own = logq.gather(1, tokens[:, None])
    return (logq > own).sum(-1)


def row_blocks(n: int, width: int, block: int | None = None) -> Iterator[slice]:
    """Slices of ``block`` rows, or of as many as keep rows x ``width`` (the elements held per row: vocabulary x
    distributions) under ``BLOCK_ELEMENTS``."""
    step = block or max(1, BLOCK_ELEMENTS // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


@dataclass
class OwnLens:
    """A variant's own-lens read-out at every point: entropy, KL to its own final distribution, top-k tokens."""

    entropy: Float[np.ndarray, "points n"]
    kl_to_final: Float[np.ndarray, "points n"]
    top_ids: Int[np.ndarray, "points n k"]
    top_probs: Float[np.ndarray, "points n k"]


@dataclass
class ReadOut:
    """Every variant's own lens, and per common pair the JS between its two variants read through one common head
    at every point: (points, n)."""

    own: dict[str, OwnLens]
    common: dict[tuple[str, str], Float[np.ndarray, "points n"]]


def read_out(
    heads: dict[str, LensHead],
    xs: dict[str, Float[np.ndarray, "points n d"]],
    normalised: dict[str, list[bool]],
    common_head: LensHead | None = None,
    common_pairs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    k: int = 5,
    block: int | None = None,
    device: str = "cpu",
) -> ReadOut:
    """Per variant v, point l and row: H(p_l), KL(p_final || p_l) and the top-k tokens of p_l = softmax(head_v(x_l))
    (its last point is its final one); and per common pair (a, b) JS(q_a, q_b) with q = softmax(common_head(x)).
    The log-probabilities of each distinct (head, variant) are computed once per point and block of rows, so a
    variant whose head is the common one (the same object) reads through it once for both. ``normalised[v][l]``: v's
    point l is the final norm's output already."""
    variants = list(xs)
    n = next(iter(xs.values())).shape[1]
    own_key = {v: (id(heads[v]), v) for v in variants}
    keys = {own_key[v]: (heads[v], v) for v in variants}
    in_pairs = list(dict.fromkeys(v for pair in common_pairs for v in pair))
    if common_head is not None:
        keys |= {(id(common_head), v): (common_head, v) for v in in_pairs}
    vocab = max(h.vocab_size for h, _ in keys.values())
    moved = {id(h): h.to(device) for h, _ in keys.values()}
    out = ReadOut(
        {
            v: OwnLens(*(np.zeros(xs[v].shape[:2]) for _ in range(2)), *_top_arrays(xs[v].shape[:2], k))
            for v in variants
        },
        {pair: np.zeros(xs[pair[0]].shape[:2]) for pair in common_pairs},
    )
    for rows in row_blocks(n, vocab * (len(keys) + len(variants)), block):
        finals = {v: moved[id(heads[v])].log_probs(_rows(xs[v][-1], rows, device), normalised[v][-1]) for v in variants}
        final_plogp = {v: _plogp(f) for v, f in finals.items()}
        for layer in range(max(x.shape[0] for x in xs.values())):
            logp, p = {}, {}
            for key, (head, v) in keys.items():
                if layer >= xs[v].shape[0]:
                    continue
                final = key == own_key[v] and layer == xs[v].shape[0] - 1
                x = _rows(xs[v][layer], rows, device)
                logp[key] = finals[v] if final else moved[id(head)].log_probs(x, normalised[v][layer])
                p[key] = logp[key].exp()
            for v in variants:
                if layer < xs[v].shape[0]:
                    key = own_key[v]
                    _own_measures(out.own[v], layer, rows, logp[key], p[key], final_plogp[v], k)
            for a, b in common_pairs:
                ka, kb = (id(common_head), a), (id(common_head), b)
                out.common[(a, b)][layer, rows] = js(logp[ka], logp[kb], p[ka], p[kb]).double().cpu().numpy()
    return out


def _top_arrays(shape: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((*shape, k), np.int64), np.zeros((*shape, k))


def _rows(x: np.ndarray, rows: slice, device: str) -> Tensor:
    return torch.as_tensor(x[rows], device=device)


def _plogp(logp: Tensor) -> tuple[Tensor, Tensor]:
    """(p, sum p log p) per row, for finite log-probabilities (a lens's logits are finite, so is their log_softmax)."""
    p = logp.exp()
    return p, torch.linalg.vecdot(p, logp)


def _own_measures(
    own: OwnLens, layer: int, rows: slice, logp: Tensor, p: Tensor, final: tuple[Tensor, Tensor], k: int
) -> None:
    """H(p) = -sum p log p and KL(f || p) = sum f log f - sum f log p, from one exp and two row dot products (f: the
    final distribution and its sum f log f, exactly 0 KL at the final point itself)."""
    own.entropy[layer, rows] = (-torch.linalg.vecdot(p, logp)).double().cpu().numpy()
    kl_final = final[1] - torch.linalg.vecdot(final[0], logp)
    own.kl_to_final[layer, rows] = kl_final.clamp_min(0.0).double().cpu().numpy()
    top = torch.topk(logp, k, dim=-1)
    own.top_ids[layer, rows] = top.indices.cpu().numpy()
    own.top_probs[layer, rows] = top.values.exp().double().cpu().numpy()


def compare_outputs(
    heads: dict[str, LensHead],
    xs: dict[str, Float[np.ndarray, "n d"]],
    normalised: dict[str, bool],
    pairs: list[tuple[str, str]],
    block: int | None = None,
    device: str = "cpu",
) -> dict[tuple[str, str], dict[str, Float[np.ndarray, " n"]]]:
    """The variants' next-token distributions compared pair by pair (``behaviour``), each p_v = softmax(head_v(x_v))
    computed once per block of rows, in float64."""
    variants = list(dict.fromkeys(v for pair in pairs for v in pair))
    if not variants:
        return {}
    n = xs[variants[0]].shape[0]
    moved = {v: heads[v].to(device) for v in variants}
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {pair: {} for pair in pairs}
    width = 2 * len(variants) * max(h.vocab_size for h in moved.values())  # float64: two float32 elements each
    for rows in row_blocks(n, width, block):
        logp = {v: moved[v].log_probs(_rows(xs[v], rows, device), normalised[v], torch.float64) for v in variants}
        for a, b in pairs:
            for name, values in behaviour(logp[a], logp[b]).items():
                out[(a, b)].setdefault(name, np.zeros(n))[rows] = values.double().cpu().numpy()
    return out


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
