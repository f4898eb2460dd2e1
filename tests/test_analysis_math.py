"""trkx.analysis on problems with known answers: the Hessian of a quadratic form, SLQ's density,
Bézier curves against straight lines, linear CKA, the surface at its centre."""
import numpy as np
import pytest
import torch

from trkx.analysis.hessian import (hessian_operator, hutchinson_trace, slq_spectrum, spectral_density,
                                   top_eigenpairs)


def quadratic(dim=20, seed=0):
    """A symmetric matrix with eigenvalues 1..dim (and a few negative ones) in a random basis."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    eig = torch.arange(1, dim + 1, dtype=torch.float64)
    eig[:3] = -eig[:3] / 2
    return q @ torch.diag(eig) @ q.T, eig


def test_hessian_of_a_quadratic_form():
    a, eig = quadratic()
    loss = lambda t: 0.5 * t @ a @ t
    hvp = hessian_operator([loss], torch.zeros(len(eig), dtype=torch.float64))
    assert torch.allclose(hvp(torch.ones(len(eig), dtype=torch.float64)), a @ torch.ones(len(eig), dtype=torch.float64))
    values, vectors = top_eigenpairs(hvp, len(eig), k=3, iterations=2000, tol=1e-10, dtype=torch.float64)
    assert values == pytest.approx([20.0, 19.0, 18.0], rel=0.01)
    for lam, v in zip(values, vectors):
        assert torch.allclose(a @ v, lam * v, atol=0.05 * abs(lam))
    trace, err = hutchinson_trace(hvp, len(eig), samples=5000, dtype=torch.float64)
    want = float(eig.sum())
    assert trace == pytest.approx(want, rel=0.01) and err < 0.01 * want


def test_hessian_operator_averages_batches():
    a, eig = quadratic(8)
    theta = torch.randn(8, dtype=torch.float64)
    hvp = hessian_operator([lambda t: 0.5 * t @ a @ t, lambda t: 1.5 * t @ a @ t], theta)
    v = torch.randn(8, dtype=torch.float64)
    assert torch.allclose(hvp(v), a @ v * 2.0)


def test_slq_density_integrates_to_the_dimension():
    a, eig = quadratic(30)
    hvp = hessian_operator([lambda t: 0.5 * t @ a @ t], torch.zeros(30, dtype=torch.float64))
    spectrum = slq_spectrum(hvp, 30, vectors=3, steps=30, dtype=torch.float64)
    for nodes, weights in spectrum:
        assert weights.sum() == pytest.approx(1.0, abs=1e-8)
        assert nodes.min() == pytest.approx(float(eig.min()), abs=1e-6)   # full Lanczos: exact extremes
        assert nodes.max() == pytest.approx(float(eig.max()), abs=1e-6)
    grid = np.linspace(-30, 50, 8001)
    density = spectral_density(spectrum, grid, sigma=0.5, dim=30)
    assert np.trapezoid(density, grid) == pytest.approx(30.0, rel=1e-3)


def test_bezier_with_the_midpoint_as_control_is_the_straight_line():
    from trkx.analysis.connect import bezier_point, linear_point
    a, b = torch.randn(50), torch.randn(50)
    for t in (0.0, 0.13, 0.5, 0.8, 1.0):
        assert torch.allclose(bezier_point(a, (a + b) / 2, b, t), linear_point(a, b, t), atol=1e-6)
    assert not torch.allclose(bezier_point(a, a + b, b, 0.5), linear_point(a, b, 0.5))


def test_trained_bezier_lowers_the_loss_between_two_minima():
    """Two minima of a ring-shaped valley: the straight line crosses the hill in the middle, the
    trained curve goes round it."""
    from trkx.analysis.connect import bezier_point, linear_point, train_bezier
    loss = lambda t: (t.norm() - 1.0) ** 2
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])
    control = train_bezier([loss], a + torch.tensor([0.0, 1e-3]), b, steps=800, lr=0.02)
    mid_line = float(loss(linear_point(a, b, 0.5)))
    mid_curve = max(float(loss(bezier_point(a, control, b, t))) for t in np.linspace(0, 1, 21))
    assert mid_line == pytest.approx(1.0) and mid_curve < 0.1


def test_cka_self_rotation_and_noise():
    from trkx.analysis.similarity import linear_cka
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=g) @ torch.randn(16, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, torch.randn(2000, 16, generator=g)) < 0.02


def test_surface_at_the_centre_is_the_trained_loss():
    from trkx.analysis.params import FlatParameters
    from trkx.analysis.surface import filter_normalised_direction, surface
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    space = FlatParameters(net)
    evaluate = lambda th: {"loss": float(((space.call(th, x) - y) ** 2).mean())}
    d1, d2 = filter_normalised_direction(space, 1), filter_normalised_direction(space, 2)
    grid = np.linspace(-1, 1, 5)
    out = surface(evaluate, space.flat(), d1, d2, grid, grid)
    assert out["loss"].shape == (5, 5)
    assert out["loss"][2, 2] == pytest.approx(float(((net(x) - y) ** 2).mean()), rel=1e-6)
    assert out["loss"].max() > out["loss"][2, 2]
    # filter normalisation: each row of the first layer's direction has that row's norm
    w = net[0].weight
    d = space.unflatten(d1)["0.weight"]
    assert torch.allclose(d.norm(dim=1), w.norm(dim=1), rtol=1e-5)


def test_finite_difference_products_match_autograd():
    from trkx.analysis.hessian import finite_difference_operator
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    loss = lambda t: (t @ a @ t) ** 2 / 10 + t.sin().sum()          # not a quadratic: H depends on θ
    theta, v = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    exact = hessian_operator([loss], theta)(v)
    approx = finite_difference_operator([loss], theta, relative_step=1e-5)(v)
    assert torch.allclose(approx, exact, rtol=1e-5, atol=1e-6)


class _OnceDifferentiableSquare(torch.autograd.Function):
    """x² with a backward that cannot be differentiated again."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_operator_falls_back_to_finite_differences():
    from trkx.analysis.hessian import choose_operator
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    smooth, how = choose_operator([lambda t: (t * t).sum()], theta)
    assert how.startswith("autograd")
    notes = []
    hvp, how = choose_operator([lambda t: _OnceDifferentiableSquare.apply(t).sum()], theta, notes.append)
    assert how.startswith("central differences") and notes
    v = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    assert torch.allclose(hvp(v), 2 * v) and torch.allclose(smooth(v), 2 * v)
    forced, how = choose_operator([lambda t: (t ** 3).sum()], theta, method="differences")
    assert how.startswith("central differences")
    assert torch.allclose(forced(v), 6 * theta * v, rtol=1e-4)      # H = diag(6 θ)
    with pytest.raises(ValueError, match="'auto' or 'differences'"):
        choose_operator([lambda t: (t * t).sum()], theta, method="exact")


def test_top_eigenpairs_come_largest_magnitude_first():
    """A negative eigenvalue of the largest magnitude, found after a positive one: listed first."""
    a = torch.diag(torch.tensor([10.0, -10.5, 1.0], dtype=torch.float64))
    hvp = lambda v: a @ v
    values, vectors = top_eigenpairs(hvp, 3, k=2, iterations=3, tol=0.5, dtype=torch.float64)
    assert abs(values[0]) >= abs(values[1])
