"""Metric-learning embedding: an MLP maps hit features into a latent space where hits of one track
are close, trained with the hinge loss on truth pairs, random pairs and hard negatives."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from trkx.stage import register
from trkx.stages.common import ModelStage, TrackingModule, edge_efficiency_purity, make_mlp
from trkx.event import edge_truth
from trkx.stages.graph_construction.frnn import build_edges


@dataclass
class EmbeddingConfig:
    emb_dim: int = 8
    hidden: int = 128
    layers: int = 4
    activation: str = "tanh"
    margin: float = 0.1           # hinge margin: the radius that separates tracks in latent space
    pos_weight: float = 2.0
    randomisation: int = 2        # random pairs per hit
    knn_train: int = 50           # hard negatives per hit, from the current embedding
    epochs: int = 12
    lr: float = 3e-3
    weight_decay: float = 1e-5
    pt_min_eval: float = 1.0      # pT of the truth edges whose efficiency is logged

    def validate(self) -> None:
        if self.emb_dim < 1 or self.hidden < 1 or self.layers < 2:
            raise ValueError("embedding: need emb_dim >= 1, hidden >= 1, layers >= 2")
        if self.margin <= 0:
            raise ValueError("key 'margin': must be positive")
        if self.activation not in ("silu", "relu", "tanh", "gelu"):
            raise ValueError(f"key 'activation': unknown {self.activation!r}")


def hinge_loss(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float,
               pos_weight: float = 1.0) -> torch.Tensor:
    """Pairs of one particle pull together (d²); others push apart until ``margin`` (relu(margin-d)²)."""
    d2 = (a - b).pow(2).sum(-1)
    pos = d2[y]
    d = torch.sqrt(d2[~y] + 1e-12)
    neg = torch.relu(margin - d).pow(2)
    n = max(int(y.numel()), 1)
    return (pos_weight * pos.sum() + neg.sum()) / n


class EmbeddingModule(TrackingModule):
    def __init__(self, in_dim: int, cfg: EmbeddingConfig):
        super().__init__(cfg)
        self.net = make_mlp(in_dim, cfg.hidden, cfg.emb_dim, cfg.layers, cfg.activation, layernorm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_pairs(self, event: Data, emb: torch.Tensor) -> torch.Tensor:
        n = event.num_nodes
        hard = build_edges(emb.detach(), self.cfg.margin, self.cfg.knn_train, backend="auto")
        rand = torch.randint(0, n, (2, n * self.cfg.randomisation), device=emb.device)
        return torch.cat([event.track_edges, hard, rand], dim=1)

    def training_step(self, event: Data, batch_idx: int):
        emb = self(event.x)
        pairs = self.training_pairs(event, emb)
        y = edge_truth(event, pairs)
        loss = hinge_loss(emb.index_select(0, pairs[0]), emb.index_select(0, pairs[1]), y, self.cfg.margin, self.cfg.pos_weight)
        self.log("train_loss", loss, batch_size=1)
        return loss

    def validation_step(self, event: Data, batch_idx: int):
        emb = self(event.x)
        event = event.clone()
        event.edge_index = build_edges(emb, self.cfg.margin, None, backend="auto")
        self.record_validation(edge_efficiency_purity(event, pt_min=self.cfg.pt_min_eval))


@register("embedding")
class Embedding(ModelStage):
    """Adds ``embedding`` (N, emb_dim) to each event."""
    role = "embedding"
    Config = EmbeddingConfig
    Module = EmbeddingModule

    def infer(self, event: Data) -> Data:
        event.embedding = self.model(event.x.to(self.device)).cpu()
        return event
