"""SO(2)-equivariant interaction network (EuclidNet, Murnane et al. 2023): collisions look the same
after a rotation about the beam line, so the edge scores should not change under one.

Each hit carries invariant scalars ``h`` (from r, z and the other non-azimuthal inputs) and
``vector_channels`` equivariant 2-vectors ``V`` (channel c starts as w_c · (x, y)): a rotation R
about the beam turns every V into R·V and leaves h alone.  Per message pass:

- an edge's invariants are, per channel, the dot product V_i·V_j, the 2D cross product
  V_i × V_j (invariant under rotations, odd under reflections: it carries the bending sense) and
  |V_j - V_i|²; with the hit scalars and the (already invariant) doublet features they feed the
  edge MLP, as in the interaction GNN;
- the hit scalars are updated from the summed edge states and |V|²;
- the vectors move by Σ_j a_ij (V_j - V_i) + b_ij J(V_j - V_i), J the 90° rotation (which commutes
  with every rotation), with a, b in (-1, 1) per channel from the edge state (tanh), averaged over
  the hit's edges.

The invariants enter the MLPs through asinh, which keeps their sign and tames their growth.

Everything the decoder sees is invariant, so the scores are too (to rounding).  No LayerNorm
touches the vectors (it would mix their components)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter

from trkx.models.interaction_gnn import InteractionGNNConfig
from trkx.models.mlp import make_mlp


def rotate90(v: torch.Tensor) -> torch.Tensor:
    """J·v for (..., 2) vectors: (x, y) -> (-y, x)."""
    return torch.stack([-v[..., 1], v[..., 0]], -1)


def pair_invariants(vi: torch.Tensor, vj: torch.Tensor) -> torch.Tensor:
    """Per channel: vi·vj, vi × vj and |vj - vi|², for (E, C, 2) vectors -> (E, 3C), each through
    asinh (monotonic, odd: the cross product keeps its sign) so that growing vectors do not
    saturate the MLPs."""
    dot = (vi * vj).sum(-1)
    cross = vi[..., 0] * vj[..., 1] - vi[..., 1] * vj[..., 0]
    diff = ((vj - vi) ** 2).sum(-1)
    return torch.asinh(torch.cat([dot, cross, diff], -1))


class SO2GNN(nn.Module):
    """logit per edge, invariant under rotations about the beam axis (the ``InteractionGNN`` call).
    ``x``'s column ``r_column`` is r and ``phi_column`` is φ / ``phi_scale`` (the data stage's
    scaled features); the other columns and r are the invariant inputs."""

    def __init__(self, node_dim: int, edge_dim: int, cfg: InteractionGNNConfig, vector_channels: int = 4,
                 r_column: int = 0, phi_column: int = 1, phi_scale: float = math.pi):
        super().__init__()
        if cfg.heterogeneous:
            raise ValueError("architecture 'so2': heterogeneous is not supported")
        if not (0 <= r_column < node_dim and 0 <= phi_column < node_dim) or r_column == phi_column:
            raise ValueError(f"architecture 'so2': r_column and phi_column must be two of the {node_dim} input columns")
        self.cfg, self.channels = cfg, vector_channels
        self.r_column, self.phi_column, self.phi_scale = r_column, phi_column, phi_scale
        self.invariant_columns = [c for c in range(node_dim) if c != phi_column]
        h, L, C = cfg.hidden, cfg.mlp_layers, vector_channels
        kw = dict(activation=cfg.activation, layernorm=cfg.layernorm)
        self.vector_init = nn.Parameter(torch.linspace(0.5, 1.5, C))
        self.node_encoder = make_mlp(len(self.invariant_columns), h, h, L, out_activation=True, **kw)
        self.edge_encoder = make_mlp(2 * h + edge_dim + 3 * C, h, h, L, out_activation=True, **kw)
        self.edge_network = make_mlp(3 * h + 3 * C, h, h, L, out_activation=True, **kw)
        self.node_network = make_mlp(3 * h + C, h, h, L, out_activation=True, **kw)
        self.vector_coefficients = nn.Linear(h, 2 * C)
        self.decoder = make_mlp(3 * h + 3 * C, h, 1, L, **kw)

    def initial_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 2): channel c is vector_init[c] · (x, y) of the hit (transverse position / r scale)."""
        r = x[:, self.r_column]
        phi = x[:, self.phi_column] * self.phi_scale
        xy = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1)
        return self.vector_init[None, :, None] * xy[:, None, :]

    def forward(self, x, edge_index, efeat, region=None):
        src, dst = edge_index[0], edge_index[1]
        n = x.shape[0]
        h = self.node_encoder(x[:, self.invariant_columns])
        v = self.initial_vectors(x)
        e = self.edge_encoder(torch.cat([h[src], h[dst], efeat, pair_invariants(v[src], v[dst])], -1))
        degree = (torch.bincount(src, minlength=n) + torch.bincount(dst, minlength=n)).clamp(min=1)
        for _ in range(self.cfg.n_iterations):
            e = self.edge_network(torch.cat([h[src], h[dst], e, pair_invariants(v[src], v[dst])], -1)) + e
            agg_in = scatter(e, dst, 0, dim_size=n, reduce=self.cfg.aggregation)
            agg_out = scatter(e, src, 0, dim_size=n, reduce=self.cfg.aggregation)
            h = self.node_network(torch.cat([h, agg_in, agg_out, torch.asinh((v ** 2).sum(-1))], -1)) + h
            # equivariant vector update: each edge pulls both its hits' vectors along their difference
            a, b = torch.tanh(self.vector_coefficients(e)).unsqueeze(-1).chunk(2, dim=1)
            d = v[dst] - v[src]
            move = a * d + b * rotate90(d)
            dv = scatter(move, src, 0, dim_size=n, reduce="sum") - scatter(move, dst, 0, dim_size=n, reduce="sum")
            v = v + dv / degree[:, None, None]
        return self.decoder(torch.cat([h[src], h[dst], e, pair_invariants(v[src], v[dst])], -1)).squeeze(-1)
