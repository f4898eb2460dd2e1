"""Assignment solvers and the blackbox backward pass."""
import pytest
import torch

from trkx.losses import hamming_loss
from trkx.ops.assignment import assign_edges, blackbox_assignment

# 2 x 2 bipartite toy: sources 0, 1 -> targets 2, 3; edges (0,2) (0,3) (1,2) (1,3)
EI = torch.tensor([[0, 0, 1, 1], [2, 3, 2, 3]])


@pytest.mark.parametrize("solver", ["sparse", "dense"])
def test_assignment_picks_max_weight_matching(solver):
    w = torch.tensor([0.9, 0.8, 0.85, 0.1])
    # diagonal (0,2)+(1,3) = 1.0 ; anti-diagonal (0,3)+(1,2) = 1.65
    assert assign_edges(EI, w, 0.0, solver).tolist() == [False, True, True, False]
    # above a threshold of .5 only edges with positive gain count: .4 + .3 + .35 -> (0,3)+(1,2) = .65 vs (0,2) = .4
    assert assign_edges(EI, w, 0.5, solver).tolist() == [False, True, True, False]
    assert assign_edges(EI, torch.tensor([.1, .2, .3, .4]), 0.5, solver).sum() == 0


def test_sparse_equals_dense_on_random_graphs():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        ei = torch.randint(0, 40, (2, 150), generator=g)
        ei = ei[:, ei[0] != ei[1]]
        ei = torch.unique(ei, dim=1)
        w = torch.rand(ei.shape[1], generator=g)
        a, b = assign_edges(ei, w, 0.2, "sparse"), assign_edges(ei, w, 0.2, "dense")
        assert pytest.approx(float((w - .2)[a].sum())) == float((w - .2)[b].sum())
        # each source and target used at most once
        assert torch.bincount(ei[0][a]).max() <= 1 and torch.bincount(ei[1][a]).max() <= 1


def test_blackbox_gradient_shape_and_sign():
    w = torch.tensor([2.0, 1.0, 1.0, 2.0], requires_grad=True)   # diagonal chosen
    y = blackbox_assignment(w, EI, lam=5.0)
    assert y.tolist() == [1, 0, 0, 1]
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])                   # truth: the anti-diagonal
    hamming_loss(y, target).backward()
    assert w.grad.shape == w.shape
    # descent must lower the chosen wrong edges and raise the missed right ones
    assert (w.grad[[0, 3]] > 0).all() and (w.grad[[1, 2]] < 0).all()
    # a descent step of size λ moves w by y(w) - y(w') and flips the assignment to the truth
    with torch.no_grad():
        w2 = w - 5.0 * w.grad
    assert assign_edges(EI, w2).tolist() == [False, True, True, False]


def test_blackbox_small_lambda_is_the_true_zero_gradient():
    """For λ below the solution's margin the perturbed solve returns the same assignment:
    the gradient is the (zero) derivative of the piecewise-constant solver, the identity-like
    linearisation of y around w; large λ interpolates and gives informative gradients."""
    w = torch.tensor([2.0, 1.0, 1.0, 2.0], requires_grad=True)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])
    hamming_loss(blackbox_assignment(w, EI, lam=0.1), target).backward()
    assert torch.count_nonzero(w.grad) == 0
    w.grad = None
    hamming_loss(blackbox_assignment(w, EI, lam=10.0), target).backward()
    assert torch.count_nonzero(w.grad) == 4


def test_blackbox_finite_difference_identity():
    """λ·grad = y(w) - y(w - λ·dL/dy) exactly (the defining identity of the estimator)."""
    g = torch.Generator().manual_seed(3)
    ei = torch.unique(torch.randint(0, 30, (2, 120), generator=g), dim=1)
    ei = ei[:, ei[0] != ei[1]]
    w = torch.randn(ei.shape[1], generator=g, requires_grad=True)
    t = (torch.rand(ei.shape[1], generator=g) > 0.7).float()
    lam = 3.0
    y = blackbox_assignment(w, ei, lam)
    hamming_loss(y, t).backward()
    dldy = 1 - 2 * t
    y_pert = assign_edges(ei, w.detach() - lam * dldy).float()
    assert torch.allclose(lam * w.grad, y.detach() - y_pert)
