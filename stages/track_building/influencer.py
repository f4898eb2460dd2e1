"""Influencer condensation (Murnane 2023): every hit gets a user and an influencer embedding in
one space; users gather around one influencer of their track, the track's other influencers are
pushed away.  Tracks: a radius search from influencers to users; every non-empty influencer
neighbourhood is a track, a hit claimed by several goes to the nearest influencer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trkx.losses import influencer_loss
from trkx.stage import register
from trkx.stages.track_building.condensation import CondensationLoss, CondensationStage, OneShotConfig, influencer_tracks


@dataclass
class InfluencerConfig(OneShotConfig):
    margin: float = 1.0                # hinge margin of the repulsive and negative terms
    repulsion_weight: float = 1.0      # weight of the repulsion between nearby influencers
    negative_weight: float = 1.0       # weight of the user-influencer hinge of different particles
    knn_negatives: int = 32            # negatives per user: its nearest influencers within the margin
    radius: float = 0.5                # inference: influencer neighbourhoods of this radius ...
    merge_radius: float = 0.0          # ... merged when their influencers lie this close (0: never)

    inference_only: ClassVar[tuple[str, ...]] = ("radius", "merge_radius", "min_hits", "min_pt")


def nearest_influencers(user: torch.Tensor, infl: torch.Tensor, k: int, radius: float,
                        chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(user i, influencer j) pairs: each user's ``k`` nearest influencer embeddings within
    ``radius``, by blocks of ``chunk`` users (a dense distance block and a top-k: its cost does not
    grow when the embedding is still collapsed, unlike a radius search or a kd-tree)."""
    u, v = user.detach(), infl.detach()
    k = min(k, v.shape[0])
    rows, cols = [], []
    for s in range(0, u.shape[0], chunk):
        dist, idx = torch.cdist(u[s:s + chunk], v).topk(k, dim=1, largest=False)
        ok = dist < radius
        rows.append(torch.arange(s, s + dist.shape[0], device=u.device)[:, None].expand_as(idx)[ok])
        cols.append(idx[ok])
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.cat(cols)


class InfluencerLoss(CondensationLoss):
    """``influencer_loss`` with weights, negatives (each user's nearest influencers of other
    particles within the margin) and repelled pairs (each influencer's nearest influencers within
    the margin) from the current embedding, plus the track-parameter regression."""

    def terms(self, out, obj, k):
        c = self.cfg
        user, infl = out["space"][:, 0], out["space"][:, 1]
        u, v = nearest_influencers(user, infl, c.knn_negatives, c.margin)
        different = (obj[u] != obj[v]) | (obj[u] < 0)
        a, b = nearest_influencers(infl, infl, c.knn_negatives, c.margin)   # nearby influencers, any particle
        parts = influencer_loss(user, infl, obj, c.margin, (u[different], v[different]), (a[a != b], b[a != b]))
        parts["repulsive"] = c.repulsion_weight * parts["repulsive"]
        parts["negative"] = c.negative_weight * parts["negative"]
        return parts


@register("influencer")
class InfluencerCondensation(CondensationStage):
    """Adds ``track_id`` (and ``track_pt``, ``track_eta``) by influencer condensation."""
    Config = InfluencerConfig
    Loss = InfluencerLoss
    heads = 2                          # user and influencer embeddings
    weights_format = 3                 # 3: trained with the squared hinges and the all-pairs repulsion

    def tracks(self, out: dict[str, torch.Tensor]):
        return influencer_tracks(out["space"][:, 0], out["space"][:, 1], self.config.radius, self.config.merge_radius)
