"""Linear CKA (Kornblith et al. 2019), biased and debiased, with each Gram computed once.

Biased:   CKA = <Kc, Lc>_F / (||Kc||_F ||Lc||_F),  Kc = Xc Xc^T for column-centred X
          (= ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), the align-drift formula).
Debiased: the same ratio on Grams centred with the unbiased HSIC estimator (Song et al. 2012),
          as in Kornblith's ``center_gram(unbiased=True)``; near 0 for independent data.

For many pairs, every centred Gram is computed once (a ``GramStack``) and an L x L matrix of CKA
values is one matrix product over the Grams' triangles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float


def centered_gram(x: Float[np.ndarray, "n d"], debiased: bool = False) -> Float[np.ndarray, "n n"]:
    """Linear-kernel Gram of column-centred x; with ``debiased``, Kornblith's unbiased centering."""
    xc = np.asarray(x, dtype=np.float64)
    xc = xc - xc.mean(axis=0, keepdims=True)
    gram = xc @ xc.T
    if not debiased:
        return gram
    n = gram.shape[0]
    np.fill_diagonal(gram, 0.0)
    means = gram.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    gram -= means[:, None]
    gram -= means[None, :]
    np.fill_diagonal(gram, 0.0)
    return gram


@dataclass(frozen=True)
class GramStack:
    """Centred Grams of several representations of the same n inputs, each computed once.

    ``tri`` holds one triangle (diagonal included) of each Gram, flattened, the other triangle
    zero; so <G_i, H_j>_F = 2 tri_i . tri_j - diag_i . diag_j, and all pairs are one matrix product.
    """

    tri: Float[np.ndarray, "l nn"]
    diag: Float[np.ndarray, "l n"]

    def __len__(self) -> int:
        return len(self.tri)

    def __getitem__(self, rows: np.ndarray) -> "GramStack":
        """The Grams of the given representations, in that order (indexed like an array of them)."""
        return GramStack(self.tri[rows], self.diag[rows])

    def inner(self, other: "GramStack") -> Float[np.ndarray, "la lb"]:
        """Frobenius inner products <G_i, H_j> for every pair."""
        return 2.0 * (self.tri @ other.tri.T) - self.diag @ other.diag.T

    def inner_rowwise(self, other: "GramStack") -> Float[np.ndarray, " l"]:
        """<G_i, H_i> for matching rows."""
        return 2.0 * np.einsum("lm,lm->l", self.tri, other.tri) - np.einsum("ln,ln->l", self.diag, other.diag)

    def norms(self) -> Float[np.ndarray, " l"]:
        return np.sqrt(np.maximum(self.inner_rowwise(self), 0.0))


def gram_stack(
    xs: Sequence[Float[np.ndarray, "n d"]], debiased: bool = False, buffer: np.ndarray | None = None
) -> GramStack:
    """Centred Gram of every representation, built once (BLAS syrk for the biased case).

    ``buffer`` (at least len(xs) rows of n*n) is reused instead of fresh memory when given.
    """
    from scipy.linalg.blas import dsyrk

    n = xs[0].shape[0]
    if buffer is None:
        tri = np.zeros((len(xs), n * n))  # calloc: the untouched triangle costs no page faults
    else:
        tri = buffer[: len(xs)]
        tri.fill(0.0)
    diag = np.empty((len(xs), n))
    centred: np.ndarray | None = None  # one reused buffer for the centred features
    for i, x in enumerate(xs):
        if x.shape[0] != n:
            raise ValueError(f"representation {i} has {x.shape[0]} rows, expected {n}: CKA compares the same inputs")
        out = tri[i].reshape(n, n)
        if debiased:
            gram = centered_gram(x, debiased=True)
            rows, cols = np.tril_indices(n)
            out[rows, cols] = gram[rows, cols]
        else:
            if centred is None or centred.shape != x.shape:
                centred = np.empty(x.shape)
            xc = np.subtract(x, np.mean(x, axis=0, dtype=np.float64), out=centred)
            # xc.T is a Fortran-ordered view (no copy); trans=1 gives xc xc^T into the upper
            # triangle of out.T (Fortran view) = the lower triangle of out, in place
            dsyrk(1.0, xc.T, c=out.T, trans=1, overwrite_c=1)
        diag[i] = np.diagonal(out)
    return GramStack(tri, diag)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a constant representation has no CKA)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cka_from_stacks(a: GramStack, b: GramStack) -> Float[np.ndarray, "la lb"]:
    """CKA for every (row of a, row of b) pair: one matrix product over the Gram triangles."""
    return _safe_ratio(a.inner(b), np.outer(a.norms(), b.norms()))


def cka_rowwise(a: GramStack, b: GramStack) -> Float[np.ndarray, " l"]:
    """Same-row CKA (layer i of a vs layer i of b) from two Gram stacks."""
    return _safe_ratio(a.inner_rowwise(b), a.norms() * b.norms())


def cka_matrix(
    xs: Sequence[Float[np.ndarray, "n da"]],
    ys: Sequence[Float[np.ndarray, "n db"]] | None = None,
    debiased: bool = False,
) -> Float[np.ndarray, "la lb"]:
    """Cross-layer CKA: entry (i, j) = CKA(xs[i], ys[j]); ys defaults to xs (a self-similarity map).

    xs's Grams are kept; ys's are built in blocks of ``block`` layers in one reused buffer, which
    halves the fresh memory touched (page faults dominate at n ~ 2000 otherwise).
    """
    sa = gram_stack(xs, debiased)
    if ys is None:
        return cka_from_stacks(sa, sa)
    norms_a = sa.norms()
    result = np.empty((len(xs), len(ys)))
    block = 8
    buffer = np.zeros((min(block, len(ys)), xs[0].shape[0] ** 2))
    for start in range(0, len(ys), block):
        sb = gram_stack(ys[start : start + block], debiased, buffer)
        result[:, start : start + sb.tri.shape[0]] = _safe_ratio(sa.inner(sb), np.outer(norms_a, sb.norms()))
    return result


def linear_cka(x: Float[np.ndarray, "n da"], y: Float[np.ndarray, "n db"], debiased: bool = False) -> float:
    """CKA of two representations of the same n inputs (widths may differ)."""
    return float(cka_matrix([x], [y], debiased)[0, 0])
