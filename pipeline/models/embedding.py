"""Metric-learning embedding network: hit features to a latent space where hits of one track are close."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trkx.models.mlp import check_activation, make_mlp


@dataclass
class EmbeddingNetConfig:
    emb_dim: int = 8
    hidden: int = 128
    layers: int = 4
    activation: str = "tanh"

    def validate(self) -> None:
        if self.emb_dim < 1 or self.hidden < 1 or self.layers < 2:
            raise ValueError("embedding: need emb_dim >= 1, hidden >= 1, layers >= 2")
        check_activation(self.activation)


class EmbeddingNet(nn.Module):
    """(N, in_dim) hit features -> (N, emb_dim) latent coordinates."""

    def __init__(self, in_dim: int, cfg: EmbeddingNetConfig):
        super().__init__()
        self.mlp = make_mlp(in_dim, cfg.hidden, cfg.emb_dim, cfg.layers, cfg.activation, layernorm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
