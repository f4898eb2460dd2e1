"""Edge filter stage: ``trkx.models.EdgeMLP`` scores each edge from its two hits' features and the
edge geometry, trained with weighted BCE; edges below the cut are removed."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from trkx.event import EDGE_FEATURES, select_edges
from trkx.losses import EdgeBCELoss
from trkx.metrics.edges import edge_efficiency_purity
from trkx.models import EdgeMLP, EdgeMLPConfig
from trkx.stage import EdgeClassifier, register
from trkx.training import EdgeClassifierModule, LightningStage, SampledTrainingConfig


@dataclass
class FilterConfig(EdgeMLPConfig, SampledTrainingConfig):
    """The network's keys (``EdgeMLPConfig``), the training ones (``SampledTrainingConfig``) and
    the filter's own."""
    pos_weight: float = 2.0
    epochs: int = 10
    edges_per_batch: int = 200000  # edges of an event are scored in chunks of this size
    train_edges: int = 40000      # random edges per event and training step (0: all)
    cut: float = 0.05             # keep edges with filter_score >= cut

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.cut <= 1.0:
            raise ValueError("key 'cut': must lie in [0, 1]")


@register("filter")
class EdgeFilter(LightningStage, EdgeClassifier):
    """Adds ``filter_score`` and removes edges below ``cut``."""
    Config = FilterConfig
    score_field = "filter_score"

    def build(self, in_dim: int) -> EdgeClassifierModule:
        cfg = self.config
        net = EdgeMLP(in_dim, len(EDGE_FEATURES), cfg, chunk=cfg.edges_per_batch)
        return EdgeClassifierModule(net, EdgeBCELoss(cfg.pos_weight), cfg, val_cut=cfg.cut,
                                    train_edges=cfg.train_edges)

    def fit_report(self, val) -> dict:
        return {"val_before": [edge_efficiency_purity(e, pt_min=self.config.pt_min_eval) for e in val]}

    def infer(self, event: Data) -> Data:
        score = torch.sigmoid(self.model(event.to(self.device))).cpu()
        event = event.cpu()
        event.filter_score = score
        return select_edges(event, score >= self.config.cut)
