"""Edge classification on the line graph (Kortus et al.): the hit graph's edges become the nodes,
and two of them are joined where one ends at the hit the other starts from (consecutive
segments).  Message passing then runs between segments, and the change of the edge features from
one segment to the next (for planar events the change of slopes, i.e. the projected scattering
angles) is an input instead of something the network has to form."""
from __future__ import annotations

import torch
from torch import nn

from trkx.event import group_products
from trkx.models.interaction_gnn import InteractionGNN, InteractionGNNConfig
from trkx.models.mlp import make_mlp


def line_graph_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """(2, P) pairs (e1, e2) of hit-graph edges with dst(e1) == src(e2), every such pair once
    (vectorised: per hit, its incoming edges × its outgoing edges)."""
    src, dst = edge_index[0], edge_index[1]
    by_dst = torch.argsort(dst, stable=True)
    by_src = torch.argsort(src, stable=True)
    n_in = torch.bincount(dst, minlength=num_nodes)
    n_out = torch.bincount(src, minlength=num_nodes)
    start_in, start_out = torch.cumsum(n_in, 0) - n_in, torch.cumsum(n_out, 0) - n_out
    hit, i, j = group_products(n_in, n_out)
    return torch.stack([by_dst[start_in[hit] + i], by_src[start_out[hit] + j]])


class LineGraphGNN(nn.Module):
    """logit per hit-graph edge (the same call as ``InteractionGNN``): line-graph nodes carry both
    hits' features and the edge's features; line-graph edges carry the change of edge features
    between the two segments; an interaction network over the line graph, then a node decoder."""

    def __init__(self, node_dim: int, edge_dim: int, cfg: InteractionGNNConfig):
        super().__init__()
        if cfg.heterogeneous:
            raise ValueError("architecture 'line_graph': heterogeneous is not supported")
        self.body = InteractionGNN(2 * node_dim + edge_dim, edge_dim, cfg, edge_decoder=False)
        self.decoder = make_mlp(cfg.hidden, cfg.hidden, 1, cfg.mlp_layers, activation=cfg.activation,
                                layernorm=cfg.layernorm)

    def forward(self, x, edge_index, efeat, region=None):
        segments = torch.cat([x[edge_index[0]], x[edge_index[1]], efeat], -1)
        pairs = line_graph_edges(edge_index, x.shape[0])
        change = efeat[pairs[1]] - efeat[pairs[0]]
        h, _ = self.body.propagate(segments, pairs, change)
        return self.decoder(h).squeeze(-1)
