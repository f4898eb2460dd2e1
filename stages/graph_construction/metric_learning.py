"""Metric-learning embedding stage: ``trkx.models.EmbeddingNet`` maps hit features into a latent
space where hits of one track are close, trained with the hinge loss on truth pairs, random pairs
and hard negatives.  A radius graph on ``embedding`` (stage ``graph``) then builds the edges."""
from __future__ import annotations

from dataclasses import dataclass

from torch_geometric.data import Data

from trkx.losses import HingeEmbeddingLoss
from trkx.models import EmbeddingNet, EmbeddingNetConfig
from trkx.stage import Embedder, register
from trkx.training import LightningStage, MetricLearningModule, TrainingConfig


@dataclass
class EmbeddingConfig(EmbeddingNetConfig, TrainingConfig):
    """The network's keys (``EmbeddingNetConfig``), the training ones (``TrainingConfig``) and the
    metric learning's own."""
    margin: float = 0.1           # hinge margin: the radius that separates tracks in latent space
    pos_weight: float = 2.0
    randomisation: int = 2        # random pairs per hit
    knn_train: int = 50           # hard negatives per hit, from the current embedding
    epochs: int = 12
    lr: float = 3e-3

    def validate(self) -> None:
        super().validate()
        if self.margin <= 0:
            raise ValueError("key 'margin': must be positive")


@register("embedding")
class Embedding(LightningStage, Embedder):
    """Adds ``embedding`` (N, emb_dim) to each event."""
    Config = EmbeddingConfig
    weights_format = 3   # the network's layers moved under ``mlp``

    def build(self, in_dim: int) -> MetricLearningModule:
        cfg = self.config
        return MetricLearningModule(EmbeddingNet(in_dim, cfg), HingeEmbeddingLoss(cfg.margin, cfg.pos_weight), cfg)

    def example_inputs(self, event: Data) -> tuple:
        return (event.x,)

    def cpp_lines(self) -> list[str]:
        return [f"embedding {self.name} torchscript/{self.name}.pt"]

    def infer(self, event: Data) -> Data:
        event.embedding = self.model(event.x.to(self.device)).cpu()
        return event
