"""Hierarchical GNN (Liu et al. 2023, the GNN4ITk extensions lecture): hits are pooled into
track-like super-nodes and messages pass on the hit graph, on a graph of super-nodes, and between
the two; every (hit, super-node) pair is then classified (a hit joins its best super-node), and so
is every edge of the super-node graph (super-nodes that are pieces of one track are joined).
A track cut in two by a missing edge of the hit graph can come back together: its pieces lie near
each other in the learned embedding, are neighbours on the super-node graph, and are joined there.

Pooling, Gaussian-mixture style as in the paper, with the mixture's components found rather than
fixed in number: the hit graph's edges whose two hits lie within ``pool_radius`` / 2 in the embedding
(unit vectors, ``emb_dim``) link them, and each connected group of at least ``min_cluster`` hits
seeds one component (linking along graph edges, not every pair within the radius, keeps the groups
from percolating into one), with the group's
mean as its centre, its spread as its width (held between ``pool_radius`` / 4 and / 2, so that
a merged group does not swallow its neighbours) and its size as its weight.  Each hit's distribution
over super-nodes is the posterior of that mixture over its ``bipartite_k`` nearest components
(it sums to 1).  The component search is not differentiated (like the paper's, it is a discrete
choice); centres, widths and posteriors are, so the embedding learns from the track loss too."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import nn
from torch.nn import functional as F
from torch_geometric.utils import scatter

from trkx.models.interaction_gnn import InteractionGNN, InteractionGNNConfig
from trkx.models.mlp import make_mlp


@dataclass
class HGNNConfig(InteractionGNNConfig):
    emb_dim: int = 8              # the pooling space
    hier_iterations: int = 3      # message passes at both levels after pooling
    pool_radius: float = 0.2      # embedding distance that links two hits into one component's seed group
    min_cluster: int = 3          # smaller groups seed no component
    bipartite_k: int = 4          # candidate super-nodes per hit (the nearest centres)
    super_k: int = 6              # super-graph: each super-node's nearest super-nodes

    def validate(self) -> None:
        super().validate()
        if self.emb_dim < 2 or self.hier_iterations < 1 or self.min_cluster < 1:
            raise ValueError("hgnn: need emb_dim >= 2, hier_iterations >= 1, min_cluster >= 1")
        if self.pool_radius <= 0 or self.bipartite_k < 1 or self.super_k < 1:
            raise ValueError("hgnn: need pool_radius > 0, bipartite_k >= 1, super_k >= 1")


def mixture_pool(emb: torch.Tensor, edge_index: torch.Tensor, radius: float, min_cluster: int, k: int):
    """Super-nodes of the embedded hits ``emb`` (N, D) on the hit graph ``edge_index``: (centres
    (K, D), widths² (K,), log weights (K,), bipartite pairs (2, B) = (hit, super-node), posterior
    per pair, summing to 1 over each hit's pairs, and the hit-graph edges that linked hits (2, P)).
    Hits with no component get no pair."""
    n = emb.shape[0]
    with torch.no_grad():
        near = ((emb[edge_index[0]] - emb[edge_index[1]]) ** 2).sum(1) < (radius / 2) ** 2
    links = edge_index[:, near]
    pairs = links.numpy()
    adj = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(n, n))
    group = torch.as_tensor(connected_components(adj, directed=False)[1], dtype=torch.long)
    size = torch.bincount(group, minlength=int(group.max()) + 1 if n else 0)
    big = size >= min_cluster
    if n == 0 or not bool(big.any()):
        empty = torch.zeros(0, emb.shape[1], dtype=emb.dtype)
        return empty, empty[:, 0], empty[:, 0], torch.zeros(2, 0, dtype=torch.long), empty[:, 0], links
    comp = torch.cumsum(big.long(), 0) - 1                      # component index of each big group
    member = big[group]
    idx = comp[group[member]]
    n_comp = int(big.sum())
    centre = scatter(emb[member], idx, 0, dim_size=n_comp, reduce="mean")
    spread = scatter(((emb[member] - centre[idx]) ** 2).sum(1), idx, 0, dim_size=n_comp, reduce="mean")
    width2 = spread.clamp(min=(radius / 4) ** 2, max=(radius / 2) ** 2)
    log_weight = torch.log(size[big].to(emb.dtype) / float(member.sum()))
    kk = min(k, n_comp)
    _, near = cKDTree(centre.detach().double().numpy()).query(emb.detach().double().numpy(), k=kk)
    near = torch.as_tensor(np.asarray(near).reshape(n, kk), dtype=torch.long)
    hit = torch.arange(n).repeat_interleave(kk)
    sup = near.reshape(-1)
    d2 = ((emb[hit] - centre[sup]) ** 2).sum(1)
    dim = emb.shape[1]
    loglik = log_weight[sup] - d2 / (2 * width2[sup]) - 0.5 * dim * torch.log(width2[sup])
    post = torch.softmax(loglik.view(n, kk), dim=1).reshape(-1)
    return centre, width2, log_weight, torch.stack([hit, sup]), post, links


def super_graph(centre: torch.Tensor, k: int) -> torch.Tensor:
    """(2, S) directed edges from each super-node to its ``k`` nearest others (in the embedding)."""
    n = centre.shape[0]
    if n < 2:
        return torch.zeros(2, 0, dtype=torch.long)
    kk = min(k + 1, n)
    _, near = cKDTree(centre.detach().double().numpy()).query(centre.detach().double().numpy(), k=kk)
    near = torch.as_tensor(np.asarray(near).reshape(n, kk), dtype=torch.long)[:, 1:]
    return torch.stack([torch.arange(n).repeat_interleave(kk - 1), near.reshape(-1)])


class HierarchicalGNN(nn.Module):
    """(x, edge_index, edge features) -> dict: ``emb`` per hit, ``pairs`` (hit, super-node),
    ``posterior`` and ``logit`` per pair, ``n_super``, ``links`` (the hit-graph edges the pooling
    followed), and the super-graph's ``super_edges`` with a ``super_logit`` each: whether its two
    super-nodes are pieces of one track."""

    def __init__(self, node_dim: int, edge_dim: int, cfg: HGNNConfig):
        super().__init__()
        if cfg.heterogeneous:
            raise ValueError("hgnn: heterogeneous is not supported")
        self.cfg = cfg
        h, L = cfg.hidden, cfg.mlp_layers
        kw = dict(activation=cfg.activation, layernorm=cfg.layernorm)
        self.flat = InteractionGNN(node_dim, edge_dim, cfg, edge_decoder=False)   # the hit-level encoder
        self.embed = make_mlp(h, h, cfg.emb_dim, L, **kw)
        self.bipartite_encoder = make_mlp(2 * h + 2, h, h, L, out_activation=True, **kw)
        self.super_edge_encoder = make_mlp(2 * h + 1, h, h, L, out_activation=True, **kw)
        self.hit_edge = make_mlp(3 * h, h, h, L, out_activation=True, **kw)
        self.hit_node = make_mlp(4 * h, h, h, L, out_activation=True, **kw)
        self.bipartite = make_mlp(3 * h, h, h, L, out_activation=True, **kw)
        self.super_edge = make_mlp(3 * h, h, h, L, out_activation=True, **kw)
        self.super_node = make_mlp(4 * h, h, h, L, out_activation=True, **kw)
        self.decoder = make_mlp(3 * h, h, 1, L, **kw)
        self.super_decoder = make_mlp(3 * h, h, 1, L, **kw)     # are two super-nodes one track?

    def forward(self, x, edge_index, efeat, region=None) -> dict[str, torch.Tensor]:
        c = self.cfg
        src, dst = edge_index[0], edge_index[1]
        n = x.shape[0]
        h, e = self.flat.propagate(x, edge_index, efeat)
        emb = F.normalize(self.embed(h), dim=-1)
        centre, _, _, pairs, post, links = mixture_pool(emb, edge_index, c.pool_radius, c.min_cluster, c.bipartite_k)
        hit, sup = pairs[0], pairs[1]
        k = centre.shape[0]
        if k == 0:
            return {"emb": emb, "pairs": pairs, "posterior": post, "logit": post, "n_super": 0, "links": links,
                    "super_edges": torch.zeros(2, 0, dtype=torch.long), "super_logit": post}
        w = post[:, None]
        norm = scatter(w, sup, 0, dim_size=k, reduce="sum").clamp(min=1e-6)
        s = scatter(w * h[hit], sup, 0, dim_size=k, reduce="sum") / norm      # super-node states
        sg = super_graph(centre, c.super_k)
        a, b = sg[0], sg[1]
        d_hs = ((emb[hit] - centre[sup]) ** 2).sum(1, keepdim=True)
        be = self.bipartite_encoder(torch.cat([h[hit], s[sup], w, d_hs], -1))
        se = self.super_edge_encoder(torch.cat([s[a], s[b], ((centre[a] - centre[b]) ** 2).sum(1, keepdim=True)], -1))
        agg = c.aggregation
        for _ in range(c.hier_iterations):
            e = self.hit_edge(torch.cat([h[src], h[dst], e], -1)) + e
            be = self.bipartite(torch.cat([h[hit], s[sup], be], -1)) + be
            se = self.super_edge(torch.cat([s[a], s[b], se], -1)) + se
            h = self.hit_node(torch.cat([h, scatter(e, dst, 0, dim_size=n, reduce=agg),
                                         scatter(e, src, 0, dim_size=n, reduce=agg),
                                         scatter(w * be, hit, 0, dim_size=n, reduce="sum")], -1)) + h
            s = self.super_node(torch.cat([s, scatter(se, b, 0, dim_size=k, reduce=agg),
                                           scatter(se, a, 0, dim_size=k, reduce=agg),
                                           scatter(w * be, sup, 0, dim_size=k, reduce="sum") / norm], -1)) + s
        logit = self.decoder(torch.cat([h[hit], s[sup], be], -1)).squeeze(-1)
        super_logit = self.super_decoder(torch.cat([s[a], s[b], se], -1)).squeeze(-1)
        return {"emb": emb, "pairs": pairs, "posterior": post, "logit": logit, "n_super": k, "links": links,
                "super_edges": sg, "super_logit": super_logit}
