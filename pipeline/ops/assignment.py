"""Linear-sum-assignment of edges (each hit: at most one successor and one predecessor) and its
blackbox differentiation (Vlastelica et al. 2020) for end-to-end "predict-and-track" training."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

Solver = Literal["sparse", "dense"]


def _solve_bipartite(rows: np.ndarray, cols: np.ndarray, gain: np.ndarray, solver: Solver) -> np.ndarray:
    """Max-gain matching between row and column ids (each used at most once); gains > 0.
    Returns a boolean mask over the candidate pairs.  Every row gets a private dummy column of
    zero gain, so a full row matching always exists and a row may stay unmatched."""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    urow, r = np.unique(rows, return_inverse=True)
    ucol, c = np.unique(cols, return_inverse=True)
    nr, nc = urow.size, ucol.size
    top = float(gain.max()) + 1.0
    cost = top - gain                          # positive: scipy's sparse matrix drops explicit zeros
    if solver == "dense":
        big = top * (nr + 1) * 4.0
        mat = np.full((nr, nc + nr), big)
        mat[r, c] = cost
        mat[np.arange(nr), nc + np.arange(nr)] = top
        ri, ci = linear_sum_assignment(mat)
    else:
        data = np.concatenate([cost, np.full(nr, top)])
        ii = np.concatenate([r, np.arange(nr)])
        jj = np.concatenate([c, nc + np.arange(nr)])
        mat = csr_matrix((data, (ii, jj)), shape=(nr, nc + nr))
        ri, ci = min_weight_full_bipartite_matching(mat)
    match = np.full(nr, -1)
    match[ri] = ci
    return match[r] == c


def assign_edges(edge_index: torch.Tensor, weight: torch.Tensor, threshold: float = 0.0,
                 solver: Solver = "sparse", groups: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of edges chosen by maximising sum(weight - threshold) with each source used
    at most once and each target used at most once.  ``groups`` (per edge) solves each group
    on its own (the per-layer-pair assignment of layered detectors); None solves globally."""
    w = weight.detach().double().cpu().numpy() - threshold
    src, dst = (t.cpu().numpy() for t in edge_index)
    chosen = np.zeros(w.shape[0], dtype=bool)
    cand = w > 0
    if groups is None:
        idx = np.flatnonzero(cand)
        chosen[idx] = _solve_bipartite(src[idx], dst[idx], w[idx], solver)
    else:
        g = groups.cpu().numpy()
        order = np.flatnonzero(cand)
        order = order[np.argsort(g[order], kind="stable")]
        bounds = np.flatnonzero(np.diff(g[order])) + 1
        for idx in np.split(order, bounds):
            if idx.size:
                chosen[idx] = _solve_bipartite(src[idx], dst[idx], w[idx], solver)
    return torch.as_tensor(chosen, device=edge_index.device)


class BlackboxAssignment(torch.autograd.Function):
    """y = assignment(w) in the forward pass; in the backward pass the gradient of the
    piecewise-linear interpolation f_λ:  dL/dw = (y(w) - y(w - λ·dL/dy)) / λ   (maximisation form
    of Vlastelica et al.: a second solver call on the perturbed weights)."""

    @staticmethod
    def forward(ctx, weight, edge_index, lam, threshold, solver):
        y = assign_edges(edge_index, weight, threshold, solver).to(weight.dtype)
        ctx.save_for_backward(weight, edge_index, y)
        ctx.lam, ctx.threshold, ctx.solver = lam, threshold, solver
        return y

    @staticmethod
    def backward(ctx, grad_y):
        weight, edge_index, y = ctx.saved_tensors
        perturbed = weight.detach() - ctx.lam * grad_y
        y_lam = assign_edges(edge_index, perturbed, ctx.threshold, ctx.solver).to(weight.dtype)
        return (y - y_lam) / ctx.lam, None, None, None, None


def blackbox_assignment(weight: torch.Tensor, edge_index: torch.Tensor, lam: float, threshold: float = 0.0,
                        solver: Solver = "sparse") -> torch.Tensor:
    """Differentiable (in the blackbox sense) 0/1 edge assignment."""
    return BlackboxAssignment.apply(weight, edge_index, float(lam), float(threshold), solver)

