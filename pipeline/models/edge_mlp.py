"""Edge MLP: scores an edge from its two hits' features and the edge geometry (the edge filter)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trkx.models.mlp import check_activation, make_mlp


@dataclass
class EdgeMLPConfig:
    hidden: int = 256
    layers: int = 4
    activation: str = "silu"
    layernorm: bool = True

    def validate(self) -> None:
        if self.hidden < 1 or self.layers < 2:
            raise ValueError("need hidden >= 1 and layers >= 2")
        check_activation(self.activation)


class EdgeMLP(nn.Module):
    """logit per edge = MLP([x_src, x_dst, edge features]); ``chunk`` > 0 scores the edges in
    chunks of that many (bounds memory on large graphs)."""

    def __init__(self, node_dim: int, edge_dim: int, cfg: EdgeMLPConfig, chunk: int = 0):
        super().__init__()
        self.chunk = chunk
        self.mlp = make_mlp(2 * node_dim + edge_dim, cfg.hidden, 1, cfg.layers, cfg.activation, cfg.layernorm)

    def _score(self, x: torch.Tensor, edge_index: torch.Tensor, efeat: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x.index_select(0, edge_index[0]), x.index_select(0, edge_index[1]), efeat],
                                  -1)).squeeze(-1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, efeat: torch.Tensor,
                region: torch.Tensor | None = None) -> torch.Tensor:
        n_edges = edge_index.shape[1]
        if n_edges == 0:
            return torch.zeros(0, device=x.device)
        if not self.chunk or n_edges <= self.chunk:
            return self._score(x, edge_index, efeat)
        chunks = torch.split(torch.arange(n_edges, device=x.device), self.chunk)
        return torch.cat([self._score(x, edge_index[:, c], efeat[c]) for c in chunks])
