"""Linear CKA (Kornblith et al. 2019), biased and debiased, streamed over blocks of Gram rows.

Biased:   CKA = <Kc, Lc>_F / (||Kc||_F ||Lc||_F),  Kc = Xc Xc^T for column-centred X
          (= ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), the align-drift formula).
Debiased: the same ratio on Grams centred with the unbiased HSIC estimator (Song et al. 2012),
          as in Kornblith's ``center_gram(unbiased=True)``; near 0 for independent data.

For an L_a x L_b matrix of CKA values, no Gram is ever held whole: a block of rows of every layer's
lower-triangular Gram is built (one batched matrix product, torch, on the GPU when there is one), and
the Frobenius inner products of all pairs are accumulated from it as one more matrix product. Each
Gram entry is computed once, so the cost is that of building every Gram's triangle (syrk), plus
L_a L_b n^2 for the inner products; memory is one block, not L n^2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from layerdrift.analyses.degenerate import SPREAD_TOLERANCE

BLOCK_ELEMENTS = 2**23  # Gram entries per block and side (64 MiB in float64)


def compute_device() -> torch.device:
    """Where the Grams are built: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


FOLD_CENTRING_ABOVE = 1e-3  # relative spread above which centring is folded in as rank-one terms (see _Grams)


def centre_if_needed(x: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n d"]:
    """``x`` as it is when its rows spread enough for the folded centring to be exact to rounding (relative error
    about eps / spread^2); centred explicitly below that; all zeros when it does not vary at all (relative spread
    at most ``SPREAD_TOLERANCE``, as ``analyses.degenerate``), so that its Gram is exactly 0 and CKA is NaN."""
    mean, total = x.mean(dim=0), float(torch.linalg.vector_norm(x)) ** 2
    # ||X - mean||^2 = ||X||^2 - n ||mean||^2 is exact to about 1e-8 in relative spread: enough to decide, no copy
    if total > 0 and total - len(x) * float(mean @ mean) > FOLD_CENTRING_ABOVE**2 * total:
        return x
    centred = x - mean
    spread = float(torch.linalg.vector_norm(centred)) / total**0.5 if total > 0 else 0.0
    if spread <= SPREAD_TOLERANCE:
        return torch.zeros_like(x)
    return centred


class _Grams:
    """Rows r0:r1, columns 0:r1 of every layer's centred Gram, built into one reused buffer from the uncentred
    features: Kc = X X^T - u 1^T - 1 u^T + (mu . mu) with mu the mean feature and u = X mu (no centred copy of X).
    With ``debiased``, Song et al.'s centring, entry by entry: K~_ij = Kc_ij - m_i - m_j off the diagonal, 0 on it,
    where m = s / (n-2) - sum(s) / (2 (n-1)(n-2)) and s are Kc's row sums with its diagonal set to 0."""

    def __init__(self, xs: Sequence[Float[np.ndarray, "n d"]], debiased: bool, rows: int, device: torch.device):
        self.n = n = len(xs[0])
        for i, x in enumerate(xs):
            if len(x) != n:
                raise ValueError(f"representation {i} has {len(x)} rows, expected {n}: CKA compares the same inputs")
        self.x = [centre_if_needed(torch.as_tensor(np.asarray(x), device=device).to(torch.float64)) for x in xs]
        means = [x.mean(dim=0) for x in self.x]
        self.u = torch.stack([x @ mu for x, mu in zip(self.x, means)])  # (l, n)
        c = torch.stack([mu @ mu for mu in means])[:, None]
        self.row, self.column = self.u, c - self.u  # Kc_ij = x_i . x_j - row_i + column_j
        if debiased:
            diag = torch.stack([(x * x).sum(dim=1) for x in self.x]) - 2 * self.u + c  # Kc_ii
            sums = n * c - self.u.sum(dim=1, keepdim=True) - diag  # Kc's row sums (0 up to rounding) minus Kc_ii
            m = sums / (n - 2) - sums.sum(dim=1, keepdim=True) / (2 * (n - 1) * (n - 2))
            self.row, self.column = self.row + m, self.column - m
        self.debiased = debiased
        self.buffer = torch.empty(len(xs) * rows * n, dtype=torch.float64, device=device)

    def __len__(self) -> int:
        return len(self.x)

    def block(self, r0: int, r1: int) -> Float[torch.Tensor, "l rows_by_r1"]:
        """The block, flattened per layer, with its diagonal sub-block's upper triangle zeroed and its diagonal
        divided by sqrt(2): so that 2 <block_K, block_L> summed over blocks is <K, L>_F."""
        g = self.buffer[: len(self) * (r1 - r0) * r1].view(len(self), r1 - r0, r1)
        for i, x in enumerate(self.x):
            torch.sub(self.column[i, None, :r1], self.row[i, r0:r1, None], out=g[i])
            g[i].addmm_(x[r0:r1], x[:r1].T)
        diagonal = torch.arange(r1 - r0, device=g.device)
        if self.debiased:
            g[:, diagonal, diagonal + r0] = 0.0
        g[:, :, r0:].tril_()
        g[:, diagonal, diagonal + r0] *= 0.5**0.5
        return g.view(len(self), -1)


@dataclass(frozen=True)
class GramProducts:
    """Frobenius inner products of two lists' centred Grams: every cross pair and each Gram with itself."""

    inner: Float[np.ndarray, "la lb"]  # <K_i, L_j>_F
    self_a: Float[np.ndarray, " la"]  # ||K_i||_F^2
    self_b: Float[np.ndarray, " lb"]

    def cka(self) -> Float[np.ndarray, "la lb"]:
        """<K_i, L_j> / (||K_i|| ||L_j||), NaN where a representation is constant (no CKA)."""
        den = np.sqrt(np.outer(np.maximum(self.self_a, 0.0), np.maximum(self.self_b, 0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, self.inner / np.where(den > 0, den, 1.0), np.nan)


def gram_products(
    xs: Sequence[Float[np.ndarray, "n da"]],
    ys: Sequence[Float[np.ndarray, "n db"]] | None = None,
    debiased: bool = False,
    device: torch.device | None = None,
) -> GramProducts:
    """<K_i, L_j>_F for the centred Grams of every xs[i] and ys[j] (ys defaults to xs), a block of Gram rows at a
    time: each block is rows r0:r1 of the Grams' lower triangles (columns 0:r1), built once."""
    device = device or compute_device()
    n = len(xs[0])
    rows = max(1, BLOCK_ELEMENTS // (max(len(xs), len(xs if ys is None else ys)) * n))
    a = _Grams(xs, debiased, rows, device)
    b = a if ys is None else _Grams(ys, debiased, rows, device)
    if a.n != b.n:
        raise ValueError(f"xs have {a.n} rows and ys {b.n}: CKA compares the same inputs")
    inner = torch.zeros(len(a), len(b), dtype=torch.float64, device=device)
    self_a = torch.zeros(len(a), dtype=torch.float64, device=device)
    self_b = torch.zeros(len(b), dtype=torch.float64, device=device)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        ga = a.block(r0, r1)
        gb = ga if b is a else b.block(r0, r1)
        inner.addmm_(ga, gb.T, alpha=2.0)
        self_a += 2.0 * torch.linalg.vector_norm(ga, dim=1) ** 2
        self_b += 2.0 * torch.linalg.vector_norm(gb, dim=1) ** 2
    return GramProducts(inner.cpu().numpy(), self_a.cpu().numpy(), self_b.cpu().numpy())


def cka_matrix(
    xs: Sequence[Float[np.ndarray, "n da"]],
    ys: Sequence[Float[np.ndarray, "n db"]] | None = None,
    debiased: bool = False,
    device: torch.device | None = None,
) -> Float[np.ndarray, "la lb"]:
    """Cross-layer CKA: entry (i, j) = CKA(xs[i], ys[j]); ys defaults to xs (a self-similarity map)."""
    return gram_products(xs, ys, debiased, device).cka()


def linear_cka(x: Float[np.ndarray, "n da"], y: Float[np.ndarray, "n db"], debiased: bool = False) -> float:
    """CKA of two representations of the same n inputs (widths may differ)."""
    return float(cka_matrix([x], [y], debiased, torch.device("cpu"))[0, 0])
