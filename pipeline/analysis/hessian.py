"""The Hessian of a loss at a point, through Hessian-vector products only (the matrix is never
formed): top eigenpairs by power iteration with deflation, the trace by Hutchinson's estimator,
and the eigenvalue density by stochastic Lanczos quadrature (SLQ), as PyHessian does them."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

HVP = Callable[[torch.Tensor], torch.Tensor]


def hessian_operator(losses: Sequence[Callable[[torch.Tensor], torch.Tensor]], theta: torch.Tensor) -> HVP:
    """``v -> H v`` at ``theta`` for the mean of ``losses`` (one closure per batch: each product
    runs every batch forward and twice backward, holding one batch's graph at a time)."""
    theta = theta.detach()

    def product(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(theta)
        for loss in losses:
            t = theta.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(t), t, create_graph=True)
            (hv,) = torch.autograd.grad(g, t, grad_outputs=v)
            out += hv.detach()
        return out / len(losses)
    return product


def finite_difference_operator(losses: Sequence[Callable[[torch.Tensor], torch.Tensor]], theta: torch.Tensor,
                               relative_step: float = 1e-3) -> HVP:
    """``v -> H v`` by central differences of gradients, (g(θ + εv) − g(θ − εv)) / 2ε with
    ε = ``relative_step`` · |θ| / |v|: for losses whose gradient is defined but not
    differentiable again (the blackbox assignment solver's)."""
    theta = theta.detach()

    def gradient(point: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(theta)
        for loss in losses:
            t = point.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(t), t)
            out += g
        return out / len(losses)

    def product(v: torch.Tensor) -> torch.Tensor:
        eps = relative_step * float(theta.norm().clamp_min(1.0)) / float(v.norm().clamp_min(1e-30))
        return (gradient(theta + eps * v) - gradient(theta - eps * v)) / (2 * eps)
    return product


def choose_operator(losses: Sequence[Callable[[torch.Tensor], torch.Tensor]], theta: torch.Tensor,
                    note: Callable[[str], None] = lambda s: None, method: str = "auto") -> tuple[HVP, str]:
    """The Hessian-vector product and how it is computed, in words.  ``method`` 'auto': by
    double back-propagation where the losses allow it (a product on a probe vector succeeds and
    is finite), otherwise by central differences of gradients (a loss with a once-differentiable
    custom backward); 'differences': central differences always.
    (The blackbox solver's backward is a function of the logits without a graph, so double
    back-propagation differentiates the network through it and treats the solver's surrogate
    gradient as locally constant, as PyHessian would: the Hamming term adds no curvature.
    Differences of gradients see the surrogate gradient change as the solver's choices do.)"""
    if method not in ("auto", "differences"):
        raise ValueError(f"Hessian-vector products: method must be 'auto' or 'differences', not {method!r}")
    if method == "auto":
        exact = hessian_operator(losses, theta)
        probe = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
        try:
            if torch.isfinite(exact(probe)).all():
                return exact, "autograd (double back-propagation)"
            note("double back-propagation gave non-finite products; using finite differences")
        except RuntimeError as err:
            note(f"double back-propagation failed ({str(err).splitlines()[0][:80]}); using finite differences")
    return finite_difference_operator(losses, theta), "central differences of gradients (ε = 1e-3 ‖θ‖)"


def _normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-30)


def _orthogonalise(v: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    for b in basis:
        v = v - (v @ b) * b
    return v


def top_eigenpairs(hvp: HVP, dim: int, k: int = 1, iterations: int = 100, tol: float = 1e-4,
                   seed: int = 0, dtype=torch.float32) -> tuple[list[float], list[torch.Tensor]]:
    """The ``k`` eigenvalues of largest magnitude and their unit eigenvectors, by power
    iteration, each found orthogonal to those before (deflation); stops when the Rayleigh
    quotient changes by less than ``tol`` (relative)."""
    g = torch.Generator().manual_seed(seed)
    values, vectors = [], []
    for _ in range(k):
        v = _normalise(_orthogonalise(torch.randn(dim, generator=g, dtype=dtype), vectors))
        value = None
        for _ in range(iterations):
            hv = _orthogonalise(hvp(v), vectors)
            new = float(v @ hv)
            v = _normalise(hv)
            if value is not None and abs(new - value) <= tol * (abs(value) + 1e-12):
                value = new
                break
            value = new
        values.append(value)
        vectors.append(v)
    # power iteration stopped at ``tol`` can settle on a smaller eigenvalue first where the top
    # ones are close in magnitude; report them largest magnitude first
    order = sorted(range(k), key=lambda i: -abs(values[i]))
    return [values[i] for i in order], [vectors[i] for i in order]


def hutchinson_trace(hvp: HVP, dim: int, samples: int = 100, seed: int = 0, dtype=torch.float32) -> tuple[float, float]:
    """tr(H) estimated as the mean of zᵀHz over Rademacher vectors z; (mean, standard error)."""
    g = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(samples):
        z = torch.randint(0, 2, (dim,), generator=g).to(dtype) * 2 - 1
        draws.append(float(z @ hvp(z)))
    draws = np.asarray(draws)
    return float(draws.mean()), float(draws.std(ddof=1) / math.sqrt(samples)) if samples > 1 else float("nan")


def lanczos(hvp: HVP, v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (nodes) and weights (squared first components of the Ritz vectors) of
    ``steps`` Lanczos iterations from ``v0``, with full re-orthogonalisation."""
    basis = [_normalise(v0)]
    alphas, betas = [], []
    w = hvp(basis[0])
    for j in range(steps):
        alpha = float(w @ basis[j])
        alphas.append(alpha)
        w = _orthogonalise(w - alpha * basis[j], basis)   # full re-orthogonalisation
        beta = float(w.norm())
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        basis.append(w / beta)
        w = hvp(basis[-1])
    tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    nodes, vecs = np.linalg.eigh(tri)
    return nodes, vecs[0] ** 2


def slq_spectrum(hvp: HVP, dim: int, vectors: int = 4, steps: int = 30, seed: int = 0,
                 dtype=torch.float32) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stochastic Lanczos quadrature: (nodes, weights) per Rademacher start vector; each
    vector's weights sum to 1."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(vectors):
        z = torch.randint(0, 2, (dim,), generator=g).to(dtype) * 2 - 1
        out.append(lanczos(hvp, z, min(steps, dim)))
    return out


def spectral_density(spectrum: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray, sigma: float,
                     dim: int) -> np.ndarray:
    """The eigenvalue density on ``grid``: each node a Gaussian of width ``sigma``, weighted, the
    start vectors averaged, scaled so that it integrates to ``dim`` (the number of eigenvalues)."""
    density = np.zeros_like(grid, dtype=float)
    for nodes, weights in spectrum:
        diff = grid[:, None] - nodes[None, :]
        density += (weights[None, :] * np.exp(-0.5 * (diff / sigma) ** 2)).sum(1) / (sigma * math.sqrt(2 * math.pi))
    return dim * density / len(spectrum)
