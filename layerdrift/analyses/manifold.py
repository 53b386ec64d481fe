"""Supervised multidimensional scaling (SMDS, arXiv 2510.01025): is a labelled feature laid out on a known shape?

For one cell (a layer and token) with activations X (n, d) and labels y:

1. ideal distances D from the labels and a shape (circular with a true period, so 31 December
   sits next to 1 January; discrete circular; linear; cluster);
2. target coordinates Y (n, k) by classical MDS of D;
3. a linear map to Y: ridge on the standardised activations, W = X^T (X X^T + a I)^-1 Y (the dual
   of (X^T X + a I)^-1 X^T Y), or orthonormal on the centred activations, unscaled so that the map
   is rigid in the model's own geometry (Procrustes: W = U V^T from X^T Y = U S V^T);
4. score = 1 - scale-normalised stress between D and the distances of the predicted points,
   stress = sqrt(sum (D - s D^)^2 / sum D^2) with the best scale s, on held-out rows only
   (k-fold cross-validation; each fold's target MDS and maps use its training rows only; the
   centring and scaling of the activations use every row's activations but no label, so one kernel
   X X^T per cell serves all folds).

``smds_cells`` scores many cells in one batch: folds x cells are tensor batch dimensions, and the
training rows of a fold are selected by masking (test rows get zero weight in the kernel and zero
dual coefficients), so there is no Python loop over folds or cells. ``smds_cell_reference`` is the
same algebra written out for one cell with numpy, fold by fold, for tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

Shape = Literal["circular", "discrete_circular", "linear", "cluster"]
SHAPES: tuple[str, ...] = ("circular", "discrete_circular", "linear", "cluster")


def ideal_distances(
    labels: Float[np.ndarray, " n"], shape: Shape, period: float | None = None
) -> Float[np.ndarray, "n n"]:
    """Pairwise distances the shape predicts from the labels.

    circular: chord on the unit circle, 2 sin(pi * min(|dy|, 1 - |dy|)) with dy = (y_i - y_j) / period;
    discrete_circular: steps around a cycle of ``period`` classes, min(|dy|, period - |dy|);
    linear: |y_i - y_j|; cluster: 0 within a label, 1 between labels.
    """
    y = np.asarray(labels, dtype=np.float64)
    diff = np.abs(y[:, None] - y[None, :])
    if shape in ("circular", "discrete_circular"):
        if period is None or period <= 0:
            raise ValueError(f"the {shape} shape needs a positive period")
        diff = np.mod(diff, period)
        steps = np.minimum(diff, period - diff)
        return 2.0 * np.sin(np.pi * steps / period) if shape == "circular" else steps
    if shape == "linear":
        return diff
    if shape == "cluster":
        return (diff != 0).astype(np.float64)
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def default_components(shape: Shape, labels: np.ndarray) -> int:
    """Target dimensions: 1 for a line, 2 for a circle, (classes - 1) up to 3 for clusters."""
    if shape == "linear":
        return 1
    if shape == "cluster":
        return int(max(1, min(3, len(np.unique(labels)) - 1)))
    return 2


def classical_mds(d: Float[np.ndarray, "n n"], k: int) -> Float[np.ndarray, "n k"]:
    """Torgerson MDS: the top-k eigenvectors of -1/2 J D^2 J scaled by sqrt(eigenvalue)."""
    n = d.shape[0]
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d**2) @ j
    vals, vecs = np.linalg.eigh(b)
    order = np.argsort(vals)[::-1][:k]
    return vecs[:, order] * np.sqrt(np.clip(vals[order], 0.0, None))


def procrustes_rotation(a: Float[np.ndarray, "n k"], b: Float[np.ndarray, "n k"]) -> Float[np.ndarray, "k k"]:
    """The orthogonal R minimising ||a R - b||."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def scale_normalised_stress(d_true: np.ndarray, d_pred: np.ndarray) -> float:
    """sqrt(sum (d_true - s d_pred)^2 / sum d_true^2) with the best s (pairs i < j given as flat vectors)."""
    s = float(d_true @ d_pred / max(d_pred @ d_pred, 1e-30))
    return float(np.sqrt(np.sum((d_true - s * d_pred) ** 2) / np.sum(d_true**2)))


def fold_ids(n: int, folds: int, seed: int = 0) -> Int[np.ndarray, " n"]:
    """Each row's fold: a seeded permutation dealt round-robin, so fold sizes differ by at most one."""
    if not 2 <= folds <= n // 2:
        raise ValueError(f"{folds} folds need at least {2 * folds} rows (and at least 2 folds); there are {n}")
    out = np.empty(n, dtype=np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return out


@dataclass(frozen=True)
class SmdsResult:
    """Cross-validated SMDS of a batch of cells (all arrays indexed by cell first)."""

    score: Float[np.ndarray, " c"]  # ridge map, held-out
    score_orthonormal: Float[np.ndarray, " c"]  # orthonormal (rigid) map on centred activations, held-out
    score_chance: Float[np.ndarray, " c"]  # ridge map fitted to permuted labels, scored against them
    score_reuse: Float[np.ndarray, " c"] | None  # the map of each cell's reuse source applied to this cell
    predicted: Float[np.ndarray, "c n k"]  # out-of-fold predicted coordinates (ridge), in one frame per cell
    maps: Float[np.ndarray, "c d k"]  # ridge maps fitted on all rows (standardised activations)


def _targets(labels: np.ndarray, shape: Shape, period: float | None, k: int, train: np.ndarray) -> np.ndarray:
    """Per fold: classical MDS of the training rows' ideal distances (zero on test rows), rotated onto the
    all-rows MDS."""
    d = ideal_distances(labels, shape, period)
    frame = classical_mds(d, k)
    out = np.zeros((train.shape[0], len(labels), k))
    for f, rows in enumerate(train):  # folds are few; the label-only MDS is cheap
        idx = np.flatnonzero(rows)
        y = classical_mds(d[np.ix_(idx, idx)], k)
        y = y @ procrustes_rotation(y, frame[idx] - frame[idx].mean(axis=0))
        out[f, idx] = y
    return out


def _stress_score(d_true: torch.Tensor, pred: torch.Tensor, rows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - scale-normalised stress per (fold, cell) over each fold's held-out pairs; then the mean over folds.

    d_true (n, n); pred (F, c, n, k); rows (F, m) the held-out rows of each fold, padded, with ``valid`` (F, m).
    """
    held = pred.gather(2, rows[:, None, :, None].expand(-1, pred.shape[1], -1, pred.shape[3]))  # (F, c, m, k)
    d_pred = torch.cdist(held, held)
    pairs = torch.triu(valid[:, :, None] * valid[:, None, :], diagonal=1).unsqueeze(1)  # (F, 1, m, m)
    dt = (d_true[rows[:, :, None], rows[:, None, :]]).unsqueeze(1) * pairs
    tt = (dt * dt).sum((-1, -2)).double()
    tp = (dt * d_pred).sum((-1, -2)).double()
    pp = (pairs * d_pred * d_pred).sum((-1, -2)).double().clamp_min(1e-30)
    stress = torch.sqrt(torch.clamp(1.0 - tp * tp / (tt * pp), min=0.0))
    return (1.0 - stress).mean(0)


def smds_cells(
    x: Float[np.ndarray, "c n d"],
    labels: Float[np.ndarray, " n"],
    shape: Shape,
    period: float | None = None,
    n_components: int | None = None,
    folds: int = 5,
    ridge: float = 0.1,
    seed: int = 0,
    reuse_source: Int[np.ndarray, " c"] | None = None,
) -> SmdsResult:
    """Cross-validated SMDS scores of many cells at once (see the module docstring).

    ``ridge`` is relative: a = ridge * mean squared norm of a standardised training row.
    ``reuse_source[i]`` = j applies cell j's ridge map (fitted on j's training rows) to cell i's
    held-out rows: is the same subspace read at another token?
    """
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    labels = np.asarray(labels, dtype=np.float64)
    k = n_components or default_components(shape, labels)
    train_np, perm, targets = _fold_targets(labels, shape, period, k, folds, seed)
    test_np = ~train_np
    train = torch.as_tensor(train_np, dtype=torch.float32)

    # centre and scale with all rows' activations (no labels), so that one kernel serves every fold
    xc = xt - xt.mean(1, keepdim=True)  # (c, n, d)
    xs = xc / torch.sqrt(xc.var(1, unbiased=False, keepdim=True) + 1e-6)
    rhs = targets * train[..., None]  # (F, n, 2k): targets on training rows, zero on test rows

    pred, maps = _dual_ridge(xs, train, rhs, ridge)

    pred_ortho = _orthonormal_predictions(xc, rhs[..., :k])

    cv = slice(0, folds)  # the real folds
    test = torch.as_tensor(test_np[cv], dtype=torch.float32)
    rows, valid = _held_out_rows(test_np[cv])
    d_true = torch.as_tensor(ideal_distances(labels, shape, period), dtype=torch.float32)
    d_perm = torch.as_tensor(ideal_distances(labels[perm], shape, period), dtype=torch.float32)
    score = _stress_score(d_true, pred[cv, ..., :k], rows, valid)
    score_chance = _stress_score(d_perm, pred[cv, ..., k:], rows, valid)
    score_ortho = _stress_score(d_true, pred_ortho[cv], rows, valid)
    score_reuse = None
    if reuse_source is not None:
        src = torch.as_tensor(np.asarray(reuse_source), dtype=torch.long)
        pred_reuse = xs.unsqueeze(0) @ maps[cv][:, src, :, :k]
        score_reuse = _stress_score(d_true, pred_reuse, rows, valid).numpy()
    held_out = (pred[cv, ..., :k] * test[:, None, :, None]).sum(0)  # each row from the fold that held it out
    # a cell whose activations do not vary (e.g. a first token every prompt shares) has nothing to score
    constant = torch.as_tensor(np.asarray(x)).std(1).amax(-1).numpy() < 1e-6
    nan = lambda v: np.where(constant, np.nan, v)
    return SmdsResult(
        score=nan(score.numpy()),
        score_orthonormal=nan(score_ortho.numpy()),
        score_chance=nan(score_chance.numpy()),
        score_reuse=None if score_reuse is None else nan(score_reuse),
        predicted=held_out.numpy(),
        maps=maps[-1, ..., :k].numpy(),
    )


def _orthonormal_predictions(
    xc: Float[torch.Tensor, "c n d"], rhs: Float[torch.Tensor, "F n k"]
) -> Float[torch.Tensor, "F c n k"]:
    """Predictions of an orthonormal map on the centred, unscaled activations (a rigid map acts on the model's
    own geometry): Procrustes between the training rows and the targets (test rows have zero targets and drop
    out of X^T Y)."""
    u, _, vt = torch.linalg.svd(xc.transpose(-1, -2).unsqueeze(0) @ rhs[:, None], full_matrices=False)
    return xc.unsqueeze(0) @ (u @ vt)


def _fold_targets(
    labels: Float[np.ndarray, " n"], shape: Shape, period: float | None, k: int, folds: int, seed: int
) -> tuple[Bool[np.ndarray, "F n"], Int[np.ndarray, " n"], Float[torch.Tensor, "F n 2k"]]:
    """Training rows per fold, the label permutation of the chance baseline, and per fold the k ideal
    coordinates of the true labels next to those of the permuted labels.

    Fold f < folds trains on the other rows and tests on fold f; the extra last "fold" trains on every row.
    """
    n = len(labels)
    fold = fold_ids(n, folds, seed)
    train = np.stack([fold != f for f in range(folds)] + [np.ones(n, dtype=bool)])
    perm = np.random.default_rng(seed + 1).permutation(n)
    y_true = _targets(labels, shape, period, k, train)
    y_perm = _targets(labels[perm], shape, period, k, train)
    return train, perm, torch.as_tensor(np.concatenate([y_true, y_perm], axis=-1), dtype=torch.float32)


def _dual_ridge(
    xs: Float[torch.Tensor, "c n d"], train: Float[torch.Tensor, "F n"], rhs: Float[torch.Tensor, "F n t"], ridge: float
) -> tuple[Float[torch.Tensor, "F c n t"], Float[torch.Tensor, "F c d t"]]:
    """Dual ridge per (fold, cell) on the training rows: (K_tr + a I) alpha = Y_tr, a = ridge * mean diagonal.

    Test rows are decoupled with alpha = 0, so the predictions K alpha and the map X^T alpha only use training
    rows. Returns the predictions of every row and the maps.
    """
    c = xs.shape[0]
    gram = xs @ xs.transpose(-1, -2)  # (c, n, n)
    system = gram.unsqueeze(0) * (train[:, None, :, None] * train[:, None, None, :])  # (F, c, n, n)
    n_train = train.sum(1)  # (F,)
    a = (ridge * torch.diagonal(system, dim1=-2, dim2=-1).sum(-1) / n_train[:, None]).clamp_min(1e-6)  # (F, c)
    system.diagonal(dim1=-2, dim2=-1).add_(a[..., None])
    alpha = torch.linalg.solve(system, rhs.unsqueeze(1).expand(-1, c, -1, -1))  # (F, c, n, t)
    del system
    return gram.unsqueeze(0) @ alpha, xs.transpose(-1, -2).unsqueeze(0) @ alpha


def _held_out_rows(test: Bool[np.ndarray, "F n"]) -> tuple[Int[torch.Tensor, "F m"], Float[torch.Tensor, "F m"]]:
    """Each fold's held-out row indices, padded with row 0 to the largest fold, and the mask of real ones."""
    m = int(test.sum(1).max())
    rows = torch.as_tensor(np.stack([np.pad(np.flatnonzero(t), (0, m - t.sum())) for t in test]))
    valid = torch.as_tensor(np.stack([np.arange(m) < t.sum() for t in test]), dtype=torch.float32)
    return rows, valid


def smds_cell_reference(
    x: Float[np.ndarray, "n d"],
    labels: Float[np.ndarray, " n"],
    shape: Shape,
    period: float | None = None,
    n_components: int | None = None,
    folds: int = 5,
    ridge: float = 0.1,
    seed: int = 0,
) -> tuple[float, float]:
    """(ridge score, orthonormal score) of one cell, fold by fold in numpy with the primal ridge: the slow, obvious
    version."""
    x = np.asarray(x, dtype=np.float64)
    if x.std(0).max() < 1e-6:
        return float("nan"), float("nan")  # nothing varies: nothing to score
    labels = np.asarray(labels, dtype=np.float64)
    k = n_components or default_components(shape, labels)
    fold = fold_ids(len(labels), folds, seed)
    d_all = ideal_distances(labels, shape, period)
    frame = classical_mds(d_all, k)
    xc = x - x.mean(0)
    xs = xc / np.sqrt(xc.var(0) + 1e-6)
    scores, scores_ortho = [], []
    for f in range(folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        xtr, xte = xs[tr], xs[te]
        y = classical_mds(d_all[np.ix_(tr, tr)], k)
        y = y @ procrustes_rotation(y, frame[tr] - frame[tr].mean(0))
        a = max(ridge * np.sum(xtr**2) / len(tr), 1e-6)
        w = np.linalg.solve(xtr.T @ xtr + a * np.eye(x.shape[1]), xtr.T @ y)
        u, _, vt = np.linalg.svd(xc[tr].T @ y, full_matrices=False)
        iu = np.triu_indices(len(te), 1)
        truth = d_all[np.ix_(te, te)][iu]
        for pred, out in ((xte @ w, scores), (xc[te] @ (u @ vt), scores_ortho)):
            dp = np.sqrt(((pred[:, None] - pred[None]) ** 2).sum(-1))[iu]
            out.append(1.0 - scale_normalised_stress(truth, dp))
    return float(np.mean(scores)), float(np.mean(scores_ortho))


def subspace_similarity(maps: Float[np.ndarray, "c d k"]) -> Float[np.ndarray, "c c"]:
    """Mean cosine of the principal angles between every two cells' map subspaces (1 = same subspace, ~0 =
    orthogonal)."""
    q, _ = np.linalg.qr(np.asarray(maps, dtype=np.float64))
    overlap = np.einsum("adk,bdj->abkj", q, q)
    return np.linalg.svd(overlap, compute_uv=False).mean(-1)


def cell_drift(a: Float[np.ndarray, "n slots d"], b: Float[np.ndarray, "n slots d"]) -> Float[np.ndarray, " slots"]:
    """Mean over prompts of the cosine drift 1 - cos(a_it, b_it) at each token slot: how far a variant's activations
    moved at a cell, beside how far its score moved there."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = np.einsum("nsd,nsd->ns", a, b) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-300)
    return (1.0 - cos).mean(axis=0)
