"""Linear CKA (Kornblith et al. 2019), biased and debiased, with each Gram computed once.

Biased:   CKA = <Kc, Lc>_F / (||Kc||_F ||Lc||_F),  Kc = Xc Xc^T for column-centred X
          (= ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), the align-drift formula).
Debiased: the same ratio on Grams centred with the unbiased HSIC estimator (Song et al. 2012),
          as in Kornblith's ``center_gram(unbiased=True)``; near 0 for independent data.

For many pairs, every centred Gram is reduced once to a vector whose dot products are the
Frobenius inner products (diagonal + sqrt(2) x upper triangle), so an L x L matrix of CKA values
is one matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def gram_vector(gram: Float[np.ndarray, "n n"]) -> Float[np.ndarray, "m"]:
    """Vector v with v·w = <G, H>_F for symmetric G, H: diagonal, then sqrt(2) x upper triangle."""
    iu = np.triu_indices(gram.shape[0], k=1)
    return np.concatenate([np.diag(gram), np.sqrt(2.0) * gram[iu]])


def gram_stack(xs: Sequence[Float[np.ndarray, "n d"]], debiased: bool = False) -> Float[np.ndarray, "l m"]:
    """One Gram vector per layer (or per variant), computed once and reused for every pair."""
    return np.stack([gram_vector(centered_gram(x, debiased)) for x in xs])


def _norms(s: Float[np.ndarray, "l m"]) -> Float[np.ndarray, "l"]:
    return np.sqrt(np.maximum(np.einsum("lm,lm->l", s, s), 0.0))


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a constant representation has no CKA)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cka_from_stacks(a: Float[np.ndarray, "la m"], b: Float[np.ndarray, "lb m"]) -> Float[np.ndarray, "la lb"]:
    """CKA for every (row of a, row of b) pair: one matrix product over Gram vectors."""
    return _safe_ratio(a @ b.T, np.outer(_norms(a), _norms(b)))


def cka_rowwise(a: Float[np.ndarray, "l m"], b: Float[np.ndarray, "l m"]) -> Float[np.ndarray, "l"]:
    """Same-row CKA (layer i of a vs layer i of b) from two Gram stacks."""
    return _safe_ratio(np.einsum("lm,lm->l", a, b), _norms(a) * _norms(b))


def cka_matrix(
    xs: Sequence[Float[np.ndarray, "n da"]], ys: Sequence[Float[np.ndarray, "n db"]] | None = None, debiased: bool = False
) -> Float[np.ndarray, "la lb"]:
    """Cross-layer CKA: entry (i, j) = CKA(xs[i], ys[j]); ys defaults to xs (a self-similarity map)."""
    sa = gram_stack(xs, debiased)
    sb = sa if ys is None else gram_stack(ys, debiased)
    return cka_from_stacks(sa, sb)


def linear_cka(x: Float[np.ndarray, "n da"], y: Float[np.ndarray, "n db"], debiased: bool = False) -> float:
    """CKA of two representations of the same n inputs (widths may differ)."""
    return float(cka_matrix([x], [y], debiased)[0, 0])
