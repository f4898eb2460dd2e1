"""Training losses and their targets.  Loss objects are called as ``loss(output, event)``, so the
Lightning modules in ``trkx.training`` take any model and any loss that fit together."""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Data

from trkx.event import edge_truth, track_edge_truth
from trkx.models.tracknet import ellipse_distance


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
        from trkx.ops.assignment import blackbox_assignment

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


# --------------------------------------------------------------------------- one-shot tracking


def object_index(particle_id: torch.Tensor, is_object: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per hit the index 0..K-1 of its object (a particle that counts as one), -1 for the rest."""
    idx = torch.full_like(particle_id, -1)
    if bool(is_object.any()):
        _, inv = torch.unique(particle_id[is_object], return_inverse=True)
        idx[is_object] = inv
        return idx, int(inv.max()) + 1
    return idx, 0


def objects_of(event: Data, pt_min: float, min_hits: int) -> torch.Tensor:
    """Hits of particles that are objects to condense: not noise, pT >= ``pt_min`` and at least
    ``min_hits`` hits in the event (or sample); the others count as noise."""
    pid = event.particle_id
    _, inv, counts = torch.unique(pid, return_inverse=True, return_counts=True)
    return (pid != 0) & (event.pt >= pt_min) & (counts[inv] >= min_hits)


def condensation_points(beta: torch.Tensor, obj: torch.Tensor, k: int) -> torch.Tensor:
    """The hit of highest β of each object 0..K-1 (ties: the first)."""
    on = obj >= 0
    best = torch.full((k,), -1.0, device=beta.device).scatter_reduce(0, obj[on], beta[on], "amax")
    pos = torch.arange(beta.numel(), device=beta.device)
    top = on & (beta >= best[obj.clamp_min(0)])
    return torch.full((k,), beta.numel(), device=beta.device).scatter_reduce(0, obj[top], pos[top], "amin")


def object_condensation_loss(x: torch.Tensor, beta: torch.Tensor, obj: torch.Tensor, k: int,
                             q_min: float = 0.1, noise_weight: float = 1.0,
                             repulsion_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Object condensation (Kieseler 2020).  Charge q = artanh²β + q_min; around each object's
    condensation point α (its highest-β hit) its own hits j feel an attractive potential
    q_j q_α ‖x_j - x_α‖² and every other hit a repulsive one q_j q_α max(0, 1 - ‖x_j - x_α‖).
    As in the object_condensation library, the attraction is averaged over the object's hits and
    the repulsion over the other hits, then both over the objects (every track weighs the same,
    whatever its length).  ``repulsion_weight`` scales the repulsion: averaged over all other hits
    of the event it is small, and too weak a repulsion lets neighbouring tracks merge.  The β terms
    pull each α's β to one (mean of 1 - β_α) and noise β to zero (``noise_weight`` times the noise
    hits' mean β)."""
    q = torch.atanh(beta.clamp(0.0, 1 - 1e-4)) ** 2 + q_min
    zero = x.sum() * 0.0
    if k == 0:
        return {"attractive": zero, "repulsive": zero, "beta": zero,
                "noise": noise_weight * beta.mean() if beta.numel() else zero}
    alpha = condensation_points(beta, obj, k)
    d2 = torch.cdist(x, x[alpha]).pow(2)                              # (N, K)
    own = obj[:, None] == torch.arange(k, device=x.device)[None, :]
    qq = q[:, None] * q[alpha][None, :]
    n_own = own.sum(0)
    attractive = (torch.where(own, d2 * qq, 0.0).sum(0) / n_own).mean()
    push = torch.where(own, 0.0, torch.relu(1 - torch.sqrt(d2 + 1e-12)) * qq)
    repulsive = (push.sum(0) / (x.shape[0] - n_own).clamp_min(1)).mean()
    noise = obj < 0
    return {"attractive": attractive, "repulsive": repulsion_weight * repulsive, "beta": (1 - beta[alpha]).mean(),
            "noise": noise_weight * beta[noise].mean() if bool(noise.any()) else zero}


def same_object_pairs(obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs (i, j) of hits of one object, i == j included (objects of a few dozen hits)."""
    on = torch.nonzero(obj >= 0).squeeze(1)
    order = on[torch.argsort(obj[on], stable=True)]
    counts = torch.bincount(obj[order])
    counts = counts[counts > 0]
    start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)   # per sorted hit
    size = torch.repeat_interleave(counts, counts)
    i = torch.repeat_interleave(torch.arange(order.numel(), device=obj.device), size)
    offset = torch.arange(i.numel(), device=obj.device) - torch.repeat_interleave(torch.cumsum(size, 0) - size, size)
    j = start[i] + offset
    return order[i], order[j]


def influencer_loss(user: torch.Tensor, influencer: torch.Tensor, obj: torch.Tensor, margin: float = 1.0,
                    negatives: tuple[torch.Tensor, torch.Tensor] | None = None,
                    influencer_pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Influencer condensation (Murnane 2023).  Per object a with N hits, Δ_ij = ‖U(x_i) - I(x_j)‖:
    attractive L_a⁺ = exp(1/N Σ_j ln(1/N Σ_i Δ_ij² / margin²)), the geometric mean over influencers
    of the mean squared user distance, small when every user is near at least one influencer,
    averaged over objects; repulsive: the squared hinge max(0, margin - ‖I(x_i) - I(x_j)‖)² over
    ``influencer_pairs``, pairs of influencer embeddings near each other whatever their particle
    (one influencer per neighbourhood; None: every pair of one object's influencers); negative:
    the squared hinge max(0, margin - Δ_ij)² on ``negatives``, (user i, influencer j) pairs of
    different objects (or noise).  The squared hinges and the repulsion between all nearby
    influencers follow the reference implementation; the linear, per-track form of the talk's
    slides left every embedding in a shell around its users (docs/methods/one-shot.md)."""
    zero = user.sum() * 0.0
    i, j = same_object_pairs(obj)
    out = {"attractive": zero, "repulsive": zero, "negative": zero}
    hinge = lambda a, b: torch.relu(margin - torch.sqrt((a - b).pow(2).sum(-1) + 1e-12)).pow(2).mean()  # noqa: E731
    if i.numel():
        d2 = (user[i] - influencer[j]).pow(2).sum(-1) / margin**2
        # mean over users i for every influencer j, then the log-mean over the object's influencers
        per_j = torch.zeros(obj.numel(), device=user.device).index_add(0, j, d2)
        n_of = torch.bincount(obj[obj >= 0])
        hits = torch.nonzero(obj >= 0).squeeze(1)
        n = n_of[obj[hits]].float()
        log_mean = torch.log(per_j[hits] / n + 1e-12)
        per_obj = torch.zeros(n_of.numel(), device=user.device).index_add(0, obj[hits], log_mean / n)
        out["attractive"] = torch.exp(per_obj[n_of > 0]).mean()
    if influencer_pairs is None:
        influencer_pairs = (i[i != j], j[i != j])
    a, b = influencer_pairs
    if a.numel():
        out["repulsive"] = hinge(influencer[a], influencer[b])
    if negatives is not None and negatives[0].numel():
        out["negative"] = hinge(user[negatives[0]], influencer[negatives[1]])
    return out


def track_parameter_loss(log_pt: torch.Tensor, eta: torch.Tensor, event: Data, hits: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each object hit's (log pT, η) against its particle's."""
    if not bool(hits.any()):
        return log_pt.sum() * 0.0
    target_log_pt = torch.log(event.pt[hits].clamp_min(1e-3))
    return ((log_pt[hits] - target_log_pt) ** 2 + (eta[hits] - event.eta[hits]) ** 2).mean()


def tracknet_loss(pred: torch.Tensor, target: torch.Tensor, point_weight: float = 0.9,
                  area_weight: float = 0.1) -> torch.Tensor:
    """Ariadne's TrackNETv2 loss: ``point_weight`` times the target's distance from the ellipse's
    centre in units of its semi-axes (1 on the ellipse's edge) plus ``area_weight`` times the
    product of the semi-axes (the ellipse's area / π), averaged; ``pred`` (..., 4), ``target``
    (..., 2)."""
    d = ellipse_distance(pred, target)
    return (point_weight * d + area_weight * pred[..., 2] * pred[..., 3]).mean()


def super_node_particles(pairs: torch.Tensor, posterior: torch.Tensor, particle_id: torch.Tensor,
                         n_super: int) -> torch.Tensor:
    """The particle each super-node stands for: the one with the largest posterior mass among its
    hits (noise, particle 0, counts like any other, so a noise super-node matches nothing)."""
    hit, sup = pairs
    pid = particle_id[hit]
    keys, inv = torch.unique(torch.stack([sup, pid]), dim=1, return_inverse=True)
    mass = torch.zeros(keys.shape[1], dtype=posterior.dtype).index_add(0, inv, posterior.detach())
    best = torch.full((n_super,), -1.0, dtype=posterior.dtype).scatter_reduce(0, keys[0], mass, "amax")
    winner = torch.nonzero(mass >= best[keys[0]]).squeeze(1)
    out = torch.zeros(n_super, dtype=particle_id.dtype)
    out[keys[0, winner]] = keys[1, winner]          # ties: one of the tied particles
    return out


class HierarchicalLoss(nn.Module):
    """The HGNN's loss: BCE on every (hit, super-node) pair, true where the hit is of the
    super-node's particle (and not noise), BCE on every super-graph edge, true where its two
    super-nodes stand for one particle, plus ``embedding_weight`` times a hinge loss in the
    pooling space on the hit graph's edges (hits of one particle together, others beyond
    ``margin``), so that the pooling's links follow tracks."""

    def __init__(self, pos_weight: float, embedding_weight: float, margin: float):
        super().__init__()
        self.pos_weight, self.embedding_weight, self.margin = pos_weight, embedding_weight, margin

    def forward(self, out: dict, event: Data) -> dict[str, torch.Tensor]:
        emb = out["emb"]
        ei = event.edge_index
        terms = {"embedding": self.embedding_weight * hinge_loss(emb[ei[0]], emb[ei[1]], edge_truth(event, ei),
                                                                 self.margin)}
        if out["n_super"]:
            pid = event.particle_id
            owner = super_node_particles(out["pairs"], out["posterior"], pid, out["n_super"])
            hit, sup = out["pairs"]
            y = ((pid[hit] == owner[sup]) & (pid[hit] != 0)).float()
            terms["bipartite"] = weighted_bce(out["logit"], y, torch.ones_like(y), self.pos_weight)
            a, b = out["super_edges"]
            same = ((owner[a] == owner[b]) & (owner[a] != 0)).float()
            terms["super_edges"] = weighted_bce(out["super_logit"], same, torch.ones_like(same), self.pos_weight)
        else:
            terms["bipartite"] = terms["super_edges"] = emb.sum() * 0.0
        return terms
