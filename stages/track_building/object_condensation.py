"""Object condensation (Kieseler 2020; gnn_tracking's one-shot tracking): a GNN over the
constructed graph puts every hit in a clustering space with a condensation strength β; the hits of
each particle condense around its highest-β hit.  Tracks: condensation points (β > ``t_beta``,
neighbours within ``t_d``) or DBSCAN / HDBSCAN (scikit-learn) in the clustering space."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from trkx.stages.track_building.condensation import (CondensationLoss, CondensationStage, OneShotConfig, condensation_tracks,
                               density_tracks)
from trkx.losses import object_condensation_loss
from trkx.stage import register


@dataclass
class ObjectCondensationConfig(OneShotConfig):
    q_min: float = 0.1                 # charge q = artanh²β + q_min
    noise_weight: float = 1.0          # s_B: weight of the noise hits' β term
    repulsion_weight: float = 20.0     # weight of the repulsive potential (see object_condensation_loss)
    clustering: Literal["condensation", "dbscan", "hdbscan"] = "condensation"
    t_beta: float = 0.5                # condensation points: β above this ...
    t_d: float = 0.5                   # ... and hits within this distance of one (DBSCAN: eps)
    min_samples: int = 2               # DBSCAN / HDBSCAN core points

    inference_only: ClassVar[tuple[str, ...]] = ("clustering", "t_beta", "t_d", "min_samples", "min_hits", "min_pt")


class ObjectCondensationLoss(CondensationLoss):
    """``object_condensation_loss`` on the clustering coordinates and β (plus the track-parameter
    regression)."""

    def terms(self, out, obj, k):
        c = self.cfg
        return object_condensation_loss(out["space"][:, 0], out["beta"], obj, k, c.q_min, c.noise_weight,
                                        c.repulsion_weight)


@register("object_condensation")
class ObjectCondensation(CondensationStage):
    """Adds ``track_id`` (and ``track_pt``, ``track_eta``) by object condensation."""
    Config = ObjectCondensationConfig
    Loss = ObjectCondensationLoss

    def tracks(self, out: dict[str, torch.Tensor]):
        c = self.config
        if c.clustering == "condensation":
            return condensation_tracks(out["space"][:, 0], out["beta"], c.t_beta, c.t_d)
        return density_tracks(out["space"][:, 0], out["beta"], c.clustering, c.t_d, c.min_samples)
