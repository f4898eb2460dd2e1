"""Edge filter: an MLP scores each edge from its two hits' features and the edge geometry,
trained with weighted BCE; edges below the cut are removed."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.data import Data

from trkx.stage import register
from trkx.stages.common import (EDGE_FEATURES, EDGE_FIELDS, TRAINING_EDGE_FIELDS, ModelStage, SamplingConfig,
                                TrackingModule, edge_efficiency_purity, edge_features, edge_training_targets,
                                make_mlp, select_edges, weighted_bce)


@dataclass
class FilterConfig:
    hidden: int = 256
    layers: int = 4
    activation: str = "silu"
    layernorm: bool = True
    pos_weight: float = 2.0
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-5
    edges_per_batch: int = 200000  # edges of an event are scored in chunks of this size
    train_edges: int = 40000      # random edges per event and training step (0: all)
    cut: float = 0.05             # keep edges with filter_score >= cut
    pt_min_eval: float = 1.0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)   # sector training samples

    def validate(self) -> None:
        if not 0.0 <= self.cut <= 1.0:
            raise ValueError("key 'cut': must lie in [0, 1]")
        if self.activation not in ("silu", "relu", "tanh", "gelu"):
            raise ValueError(f"key 'activation': unknown {self.activation!r}")


class FilterNet(nn.Module):
    def __init__(self, node_dim: int, cfg: FilterConfig):
        super().__init__()
        self.mlp = make_mlp(2 * node_dim + len(EDGE_FEATURES), cfg.hidden, 1, cfg.layers, cfg.activation, cfg.layernorm)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, efeat: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x.index_select(0, edge_index[0]), x.index_select(0, edge_index[1]), efeat], -1)).squeeze(-1)


class FilterModule(TrackingModule):
    def __init__(self, node_dim: int, cfg: FilterConfig):
        super().__init__(cfg)
        self.net = FilterNet(node_dim, cfg)

    def forward(self, event: Data) -> torch.Tensor:
        ef = edge_features(event, event.edge_index)
        chunks = torch.split(torch.arange(event.edge_index.shape[1], device=event.x.device), self.cfg.edges_per_batch)
        return torch.cat([self.net(event.x, event.edge_index[:, c], ef[c]) for c in chunks]) if chunks else \
            torch.zeros(0, device=event.x.device)

    def training_step(self, event: Data, batch_idx: int):
        n_edges = event.edge_index.shape[1]
        if 0 < self.cfg.train_edges < n_edges:
            pick = torch.randperm(n_edges, device=event.x.device)[: self.cfg.train_edges]
            event = select_edges(event.clone(), pick, TRAINING_EDGE_FIELDS)
        target, weight = edge_training_targets(event)
        loss = weighted_bce(self(event), target, weight, self.cfg.pos_weight)
        self.log("train_loss", loss, batch_size=1)
        return loss

    def validation_step(self, event: Data, batch_idx: int):
        keep = torch.sigmoid(self(event)) >= self.cfg.cut
        self.record_validation(edge_efficiency_purity(event, keep, self.cfg.pt_min_eval))


@register("filter")
class EdgeFilter(ModelStage):
    """Adds ``filter_score`` and removes edges below ``cut``."""
    role = "edge_classification"
    Config = FilterConfig
    Module = FilterModule
    score_field = "filter_score"

    def fit_report(self, val) -> dict:
        return {"val_before": [edge_efficiency_purity(e, pt_min=self.config.pt_min_eval) for e in val]}

    def infer(self, event: Data) -> Data:
        score = torch.sigmoid(self.model(event.to(self.device))).cpu()
        event = event.cpu()
        event.filter_score = score
        return select_edges(event, score >= self.config.cut, EDGE_FIELDS)
