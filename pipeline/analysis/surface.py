"""Loss (and metric) surfaces around a trained point: values on a grid of θ + a·d1 + b·d2 along
two directions, either Hessian eigenvectors or filter-normalised random directions (Li et al.,
"Visualizing the loss landscape of neural nets")."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from trkx.analysis.params import FlatParameters


def filter_normalised_direction(space: FlatParameters, seed: int = 0) -> torch.Tensor:
    """A Gaussian direction whose every filter (row of a weight matrix; a whole bias or norm
    vector) is scaled to the norm of the same filter of the trained parameters."""
    g = torch.Generator().manual_seed(seed)
    theta = space.unflatten(space.flat())
    parts = []
    for name in space.names:
        w = theta[name]
        d = torch.randn(w.shape, generator=g, dtype=w.dtype)
        if w.dim() <= 1:
            d = d * w.norm() / d.norm().clamp_min(1e-30)
        else:
            rows_w = w.reshape(w.shape[0], -1).norm(dim=1, keepdim=True)
            rows_d = d.reshape(d.shape[0], -1).norm(dim=1, keepdim=True).clamp_min(1e-30)
            d = (d.reshape(d.shape[0], -1) * rows_w / rows_d).reshape(w.shape)
        parts.append(d.reshape(-1))
    return torch.cat(parts)


def surface(evaluate: Callable[[torch.Tensor], dict[str, float]], theta: torch.Tensor, d1: torch.Tensor,
            d2: torch.Tensor | None, alphas: np.ndarray, betas: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``evaluate(θ + a·d1 + b·d2)`` on the grid ``alphas`` × ``betas`` (a 1D line where ``d2``
    is None): each figure ``evaluate`` returns, as an array of shape (len(alphas), len(betas))
    (or (len(alphas),))."""
    theta = theta.detach()
    if d2 is None:
        rows = [evaluate(theta + a * d1) for a in alphas]
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}
    rows = [[evaluate(theta + a * d1 + b * d2) for b in betas] for a in alphas]
    return {k: np.array([[r[k] for r in row] for row in rows]) for k in rows[0][0]}
