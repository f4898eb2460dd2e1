"""Interaction GNN edge classifier: encoders, N message-passing iterations with residuals, an edge
decoder.  Optional heterogeneous variant (one node network per detector region, one edge network
per unordered region pair) and gradient checkpointing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.utils import scatter

from trkx.models.mlp import GroupedMLP, check_activation


@dataclass
class InteractionGNNConfig:
    hidden: int = 64
    n_iterations: int = 6
    mlp_layers: int = 2
    aggregation: Literal["sum", "mean", "max"] = "sum"
    layernorm: bool = True
    activation: str = "silu"
    heterogeneous: bool = False
    n_regions: int = 3
    checkpointing: Literal["none", "partial", "maximal"] = "none"

    def validate(self) -> None:
        if self.hidden < 1 or self.n_iterations < 1 or self.mlp_layers < 2:
            raise ValueError("gnn: need hidden >= 1, n_iterations >= 1, mlp_layers >= 2")
        check_activation(self.activation)


def region_pair(region_src: torch.Tensor, region_dst: torch.Tensor, n_regions: int) -> torch.Tensor:
    """Index of the unordered pair {a, b} among n(n+1)/2 pairs."""
    a, b = torch.minimum(region_src, region_dst), torch.maximum(region_src, region_dst)
    return a * n_regions - a * (a - 1) // 2 + (b - a)


class InteractionGNN(nn.Module):
    """logit per edge from node features ``x``, ``edge_index`` and edge features (and ``region``
    per node for the heterogeneous variant)."""
    # the edge MLPs' first layer on the nodes before the gather (same function, fewer operations);
    # False concatenates per edge, kept for the inference benchmark
    node_projection = True

    def __init__(self, node_dim: int, edge_dim: int, cfg: InteractionGNNConfig, edge_decoder: bool = True):
        super().__init__()
        self.cfg = cfg
        h, L = cfg.hidden, cfg.mlp_layers
        n_node = cfg.n_regions if cfg.heterogeneous else 1
        n_edge = cfg.n_regions * (cfg.n_regions + 1) // 2 if cfg.heterogeneous else 1
        kw = dict(activation=cfg.activation, layernorm=cfg.layernorm)
        self.node_encoder = GroupedMLP(n_node, node_dim, h, h, L, out_activation=True, **kw)
        self.edge_encoder = GroupedMLP(n_edge, 2 * h + edge_dim, h, h, L, out_activation=True, **kw)
        self.edge_network = GroupedMLP(n_edge, 3 * h, h, h, L, out_activation=True, **kw)
        self.node_network = GroupedMLP(n_node, 3 * h, h, h, L, out_activation=True, **kw)
        if edge_decoder:   # off where only the node states are wanted (condensation heads)
            self.decoder = GroupedMLP(n_edge, 3 * h, h, 1, L, **kw)

    def _maybe_ckpt(self, fn, *args, level: str):
        order = {"none": 0, "partial": 1, "maximal": 2}
        if self.training and order[self.cfg.checkpointing] >= order[level]:
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, x, edge_index, efeat, region=None):
        src, dst = edge_index[0], edge_index[1]
        ng, eg = self._groups(src, dst, region)
        h, e = self._propagate(x, src, dst, efeat, ng, eg)

        def decode(h, e):
            return self.decoder.forward_edges(h, src, dst, e, eg, self.node_projection).squeeze(-1)

        return self._maybe_ckpt(decode, h, e, level="maximal")

    def propagate(self, x, edge_index, efeat, region=None):
        """Node and edge states (h, e) after the encoders and ``n_iterations`` message passes."""
        src, dst = edge_index[0], edge_index[1]
        return self._propagate(x, src, dst, efeat, *self._groups(src, dst, region))

    def _groups(self, src, dst, region):
        """(node group, edge group) for the heterogeneous variant: region, unordered region pair."""
        if not self.cfg.heterogeneous:
            return None, None
        return region, region_pair(region[src], region[dst], self.cfg.n_regions)

    def _propagate(self, x, src, dst, efeat, ng, eg):
        n = x.shape[0]
        proj = self.node_projection

        def encode(x, efeat):
            h = self.node_encoder(x, ng)
            return h, self.edge_encoder.forward_edges(h, src, dst, efeat, eg, proj)

        def iteration(h, e):
            e = self.edge_network.forward_edges(h, src, dst, e, eg, proj) + e
            agg_in = scatter(e, dst, 0, dim_size=n, reduce=self.cfg.aggregation)
            agg_out = scatter(e, src, 0, dim_size=n, reduce=self.cfg.aggregation)
            h = self.node_network(torch.cat([h, agg_in, agg_out], -1), ng) + h
            return h, e

        h, e = self._maybe_ckpt(encode, x, efeat, level="maximal")
        for _ in range(self.cfg.n_iterations):
            h, e = self._maybe_ckpt(iteration, h, e, level="partial")
        return h, e
