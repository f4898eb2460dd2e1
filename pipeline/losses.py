"""Training losses and their targets.  Loss objects are called as ``loss(output, event)``, so the
Lightning modules in ``trkx.training`` take any model and any loss that fit together."""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Data

from trkx.event import edge_truth, track_edge_truth


def edge_training_targets(event: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, loss weight) per edge: consecutive truth edges are positive, other pairs of one
    particle (skipping hits) carry no weight, everything else is negative.  In a sector sample only
    the sector's own (core) edges carry weight; the overlap is context for message passing."""
    target = track_edge_truth(event)
    same = edge_truth(event, event.edge_index)
    weight = torch.where(same & ~target, 0.0, 1.0)
    if "core_edge" in event:
        weight = weight * event.core_edge
    return target.float(), weight


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Binary cross-entropy with per-edge weights and a positive-class weight, averaged over the weight."""
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, weight=weight, reduction="sum",
        pos_weight=torch.tensor(pos_weight, device=logits.device))
    return loss / weight.sum().clamp_min(1.0)


def hamming_loss(y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
    """Number of edges whose assignment differs from the truth (y_pred in {0, 1})."""
    t = y_true.to(y_pred.dtype)
    return (y_pred * (1 - t) + (1 - y_pred) * t).sum()


def hinge_loss(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float,
               pos_weight: float = 1.0) -> torch.Tensor:
    """Pairs of one particle pull together (d²); others push apart until ``margin`` (relu(margin-d)²)."""
    d2 = (a - b).pow(2).sum(-1)
    pos = d2[y]
    d = torch.sqrt(d2[~y] + 1e-12)
    neg = torch.relu(margin - d).pow(2)
    n = max(int(y.numel()), 1)
    return (pos_weight * pos.sum() + neg.sum()) / n


class EdgeBCELoss(nn.Module):
    """Edge classification, "predict then track": weighted BCE of the logits against the
    consecutive truth edges (``edge_training_targets``)."""

    def __init__(self, pos_weight: float = 1.0):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, event: Data) -> torch.Tensor:
        target, weight = edge_training_targets(event)
        return weighted_bce(logits, target, weight, self.pos_weight)


class AssignmentLoss(nn.Module):
    """"Predict and track": Hamming distance per hit between the edges the assignment solver picks
    from the logits and the truth, differentiated through the solver (blackbox), plus
    ``bce_weight`` times the edge BCE."""

    def __init__(self, lam: float = 1.0, bce_weight: float = 0.0, pos_weight: float = 1.0):
        super().__init__()
        self.lam, self.bce_weight = lam, bce_weight
        self.bce = EdgeBCELoss(pos_weight)

    def forward(self, logits: torch.Tensor, event: Data) -> torch.Tensor:
        from trkx.stages.track_building.assignment import blackbox_assignment

        target, _ = edge_training_targets(event)
        # dL/dy = ±1/N here; λ·N makes the solver's perturbation ±λ in logit units whatever the
        # event size (with λ alone it is ±λ/N, too small to flip edges: a vanishing gradient)
        norm = max(event.num_nodes, 1)
        y_hat = blackbox_assignment(logits, event.edge_index, self.lam * norm)
        loss = hamming_loss(y_hat, target) / norm
        return loss + self.bce_weight * self.bce(logits, event) if self.bce_weight else loss


class HingeEmbeddingLoss(nn.Module):
    """Metric learning: ``hinge_loss`` over pairs of hits, true where both are of one particle."""

    def __init__(self, margin: float, pos_weight: float = 1.0):
        super().__init__()
        self.margin, self.pos_weight = margin, pos_weight

    def forward(self, embedding: torch.Tensor, pairs: torch.Tensor, event: Data) -> torch.Tensor:
        y = edge_truth(event, pairs)
        return hinge_loss(embedding.index_select(0, pairs[0]), embedding.index_select(0, pairs[1]), y,
                          self.margin, self.pos_weight)
