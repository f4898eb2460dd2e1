"""One-shot tracking networks: the interaction network's node states, read out per hit into a
clustering space (object condensation: coordinates and a condensation strength β; influencer
condensation: a user and an influencer embedding in one space) and track parameters (pT, η)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trkx.models.interaction_gnn import InteractionGNN, InteractionGNNConfig
from trkx.models.mlp import make_mlp


@dataclass
class CondensationConfig(InteractionGNNConfig):
    """The interaction network's keys and the clustering space's dimension."""
    space_dim: int = 8

    def validate(self) -> None:
        super().validate()
        if self.space_dim < 1:
            raise ValueError("key 'space_dim': must be >= 1")


class CondensationGNN(nn.Module):
    """Per hit: ``heads`` blocks of ``space_dim`` clustering coordinates (object condensation: one;
    influencer condensation: user and influencer), a condensation strength β in (0, 1) and the
    track parameters (log pT in GeV, η) of the hit's particle.  Returns (N, heads·space_dim + 3)."""

    def __init__(self, node_dim: int, edge_dim: int, cfg: CondensationConfig, heads: int = 1):
        super().__init__()
        self.cfg, self.heads = cfg, heads
        self.body = InteractionGNN(node_dim, edge_dim, cfg, edge_decoder=False)
        kw = dict(activation=cfg.activation, layernorm=cfg.layernorm)
        self.space = make_mlp(cfg.hidden, cfg.hidden, heads * cfg.space_dim, cfg.mlp_layers, **kw)
        self.beta = make_mlp(cfg.hidden, cfg.hidden, 1, cfg.mlp_layers, **kw)
        self.params = make_mlp(cfg.hidden, cfg.hidden, 2, cfg.mlp_layers, **kw)

    def forward(self, x, edge_index, efeat, region=None):
        h, _ = self.body.propagate(x, edge_index, efeat, region)
        return torch.cat([self.space(h), torch.sigmoid(self.beta(h)), self.params(h)], -1)


def split_outputs(out: torch.Tensor, space_dim: int, heads: int) -> dict[str, torch.Tensor]:
    """The blocks of ``CondensationGNN``'s output by name: ``space`` (N, heads, space_dim),
    ``beta`` (N,), ``log_pt`` (N,), ``eta`` (N,)."""
    k = heads * space_dim
    return {"space": out[:, :k].reshape(-1, heads, space_dim), "beta": out[:, k],
            "log_pt": out[:, k + 1], "eta": out[:, k + 2]}
