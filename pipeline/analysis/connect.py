"""Mode connectivity between two solutions θa, θb of one stage (Garipov et al.; Kortus et al.):
the straight line (1 − t)·θa + t·θb, and a quadratic Bézier curve (1 − t)²·θa + 2t(1 − t)·c + t²·θb
whose control point c is trained so that the loss stays low along the whole curve."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch


def linear_point(theta_a: torch.Tensor, theta_b: torch.Tensor, t: float) -> torch.Tensor:
    return (1 - t) * theta_a + t * theta_b


def bezier_point(theta_a: torch.Tensor, control: torch.Tensor, theta_b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    return (1 - t) ** 2 * theta_a + 2 * t * (1 - t) * control + t ** 2 * theta_b


def train_bezier(losses: Sequence[Callable[[torch.Tensor], torch.Tensor]], theta_a: torch.Tensor,
                 theta_b: torch.Tensor, steps: int = 200, lr: float = 1e-3, seed: int = 0,
                 progress: Callable[[int, float], None] | None = None) -> torch.Tensor:
    """The control point, from the midpoint, trained with Adam: each step draws t ~ U(0, 1) and
    one batch (cycling through ``losses``) and descends the loss at the curve's point t."""
    g = torch.Generator().manual_seed(seed)
    theta_a, theta_b = theta_a.detach(), theta_b.detach()
    control = ((theta_a + theta_b) / 2).clone().requires_grad_(True)
    opt = torch.optim.Adam([control], lr=lr)
    for step in range(steps):
        t = float(torch.rand((), generator=g))
        loss = losses[step % len(losses)](bezier_point(theta_a, control, theta_b, t))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step, float(loss))
    return control.detach()


def along_path(evaluate: Callable[[torch.Tensor], dict[str, float]], point: Callable[[float], torch.Tensor],
               ts: np.ndarray) -> dict[str, np.ndarray]:
    """``evaluate(point(t))`` for each t: each figure as an array over ``ts``."""
    rows = [evaluate(point(float(t))) for t in ts]
    return {"t": np.asarray(ts, dtype=float), **{k: np.array([r[k] for r in rows]) for k in rows[0]}}
