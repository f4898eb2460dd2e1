"""Triplet windows: keep a doublet edge only if it continues into a triplet a track could make.

A particle's consecutive edges (a→b, b→c) bend little and keep their polar angle: between the
two segments the transverse direction turns by a small angle (set by the curvature and multiple
scattering) and cot θ changes little (multiple scattering only).  Per triplet of detector layers
(a's, b's, c's), windows on those two quantities are learned from training truth, and an edge
survives if it is the first or second segment of at least one triplet inside the windows of its
layers, the triplet stage of ACORN's and GNN4ITk's module maps.  Every target edge of a particle
with three or more hits lies in such a triplet (until the windows cut it).

The search sorts the out-edges of each hit by cot θ: for an in-edge a→b, only the out-edges of b
inside the Δcot θ window of (a's, b's) layers are candidates (two binary searches), so the
triplets actually scored are a few times the edges, not the product of in- and out-degrees.
"""
from __future__ import annotations

import math

import torch

TURN_SCALE = 100.0   # the turning-angle feature: radians × 100
DCOT_SCALE = 10.0    # the Δcot θ feature: × 10
_EPS = 1e-6          # slack in the sorted search for float rounding; the exact test decides
ROUNDING_PAD = 1e-3  # feature units added to each side of a window


def segment_directions(edges: torch.Tensor, r: torch.Tensor, phi: torch.Tensor,
                       z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per edge: the transverse direction ψ (rad) and cot θ (Δz over the transverse length)."""
    x, y = r * torch.cos(phi), r * torch.sin(phi)
    src, dst = edges[0], edges[1]
    dx, dy = x[dst] - x[src], y[dst] - y[src]
    length = torch.sqrt(dx * dx + dy * dy).clamp_min(1e-6)
    return torch.atan2(dy, dx), (z[dst] - z[src]) / length


def triplet_features(psi: torch.Tensor, cot: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                     turn_scale: float = TURN_SCALE, dcot_scale: float = DCOT_SCALE) -> torch.Tensor:
    """(N, 2) per triplet of segments (first, second): turning angle and Δcot θ, scaled."""
    turn = torch.remainder(psi[second] - psi[first] + math.pi, 2 * math.pi) - math.pi
    return torch.stack([turn * turn_scale, (cot[second] - cot[first]) * dcot_scale], dim=1)


def consecutive_pairs(edges: torch.Tensor, n_hits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of edges (e1, e2) with e1's outer hit = e2's inner hit (all of them: used on
    truth edges, where there are few)."""
    src, dst = edges[0], edges[1]
    order = torch.argsort(src)
    out_degree = torch.bincount(src, minlength=n_hits)
    out_start = torch.cumsum(out_degree, 0) - out_degree
    k = out_degree[dst]
    first = torch.repeat_interleave(k)
    local = torch.arange(first.numel()) - (torch.cumsum(k, 0) - k)[first]
    return first, order[out_start[dst][first] + local]


def group_quantiles(group: torch.Tensor, n_groups: int, values: torch.Tensor, q: float) -> torch.Tensor:
    """(n_groups, F): the q-quantile (nearest rank) of each column of ``values`` in each group."""
    count = torch.bincount(group, minlength=n_groups)
    start = torch.cumsum(count, 0) - count
    pos = start + ((count - 1).clamp(min=0).double() * q).round().long()
    out = torch.empty(n_groups, values.shape[1])
    for j in range(values.shape[1]):
        order = torch.argsort(values[:, j], stable=True)
        order = order[torch.argsort(group[order], stable=True)]     # by group, then by value
        out[:, j] = values[order[pos.clamp(max=max(len(order) - 1, 0))], j]
    return out


def build_triplet_windows(layer_triplets: torch.Tensor, feats: torch.Tensor, quantile: float,
                          margin: float) -> dict[str, torch.Tensor]:
    """Windows per layer triplet from truth triplets: ``layer_triplets`` (N, 3) layer keys,
    ``feats`` (N, 2) their ``triplet_features``.  Each window runs from the ``quantile`` to the
    1 - ``quantile`` quantile of its triplets (a few outliers, such as hard scatters in the
    material, would otherwise open it for everyone), padded by ``margin`` times its width and by
    ``ROUNDING_PAD`` (vectorised and scalar float kernels differ in the last bit, so the same triplet
    can score a hair outside a window it spans)."""
    layers = torch.unique(layer_triplets)
    idx = torch.searchsorted(layers, layer_triplets)
    keys, group = torch.unique(idx, dim=0, return_inverse=True)
    lo = group_quantiles(group, len(keys), feats, quantile)
    hi = group_quantiles(group, len(keys), feats, 1.0 - quantile)
    pad = margin * (hi - lo) + ROUNDING_PAD
    return {"layers": layers, "triplets": keys, "lo": lo - pad, "hi": hi + pad}


def triplet_tables(windows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Lookup tables for ``triplet_keep``: triplet index per (layer, layer, layer) rank, -1 where
    none, and per (layer, layer) the union of its triplets' Δcot θ windows (the search range)."""
    n = len(windows["layers"])
    a, b, c = windows["triplets"].unbind(1)
    table = torch.full((n * n * n,), -1, dtype=torch.int32)
    table[(a * n + b) * n + c] = torch.arange(len(a), dtype=torch.int32)
    search_lo = torch.full((n * n,), float("inf")).scatter_reduce(0, a * n + b, windows["lo"][:, 1], "amin")
    search_hi = torch.full((n * n,), float("-inf")).scatter_reduce(0, a * n + b, windows["hi"][:, 1], "amax")
    return {"layers": windows["layers"], "table": table, "lo": windows["lo"], "hi": windows["hi"],
            "search_lo": search_lo, "search_hi": search_hi}


def triplet_keep(edges: torch.Tensor, layer_key: torch.Tensor, r: torch.Tensor, phi: torch.Tensor,
                 z: torch.Tensor, layers: torch.Tensor, table: torch.Tensor, lo: torch.Tensor,
                 hi: torch.Tensor, search_lo: torch.Tensor, search_hi: torch.Tensor,
                 turn_scale: float = TURN_SCALE, dcot_scale: float = DCOT_SCALE, eps: float = _EPS) -> torch.Tensor:
    """Mask of the (outward) ``edges`` that lie in at least one triplet inside the windows of its
    layers (``triplet_tables``); ``layer_key``: each hit's layer.  TorchScript-able (exported for C++)."""
    n_edges = edges.shape[1]
    keep = torch.zeros(n_edges, dtype=torch.bool)
    if n_edges == 0 or layers.numel() == 0:
        return keep
    n_layers = layers.numel()
    rank = torch.searchsorted(layers, layer_key).clamp(max=n_layers - 1)
    rank = torch.where(layers[rank] == layer_key, rank, -1)     # a layer no training triplet used
    src, dst = edges[0], edges[1]
    psi, cot = segment_directions(edges, r, phi, z)
    # out-edges sorted by (inner hit, cot θ): key = hit index + cot θ mapped monotonically into [0, 1)
    frac = (torch.atan(cot.double()) / math.pi + 0.5).clamp(0.0, 1.0 - 1e-12)
    order = torch.argsort(src.double() + frac)
    skey = src.double()[order] + frac[order]
    # one search per in-edge whose layer pair begins a triplet
    rank_src, rank_dst = rank[src], rank[dst]
    valid = (rank_src >= 0) & (rank_dst >= 0)
    pair = torch.where(valid, rank_src * n_layers + rank_dst, 0)
    w_lo, w_hi = search_lo[pair], search_hi[pair]
    rows = torch.nonzero(valid & torch.isfinite(w_lo)).squeeze(1)
    base, c = dst[rows].double(), cot[rows].double()
    f_lo = (torch.atan(c + w_lo[rows].double() / dcot_scale - eps) / math.pi + 0.5).clamp(0.0, 1.0 - 1e-12)
    f_hi = (torch.atan(c + w_hi[rows].double() / dcot_scale + eps) / math.pi + 0.5).clamp(0.0, 1.0 - 1e-12)
    start = torch.searchsorted(skey, base + f_lo)
    count = (torch.searchsorted(skey, base + f_hi, right=True) - start).clamp(min=0)
    # (in-edge, candidate out-edge) pairs: the in-edge as a position in ``rows``, the out-edge as a
    # position in the sorted order (consecutive per in-edge: one repeat_interleave, no per-pair gather
    # through ``order``)
    k = torch.repeat_interleave(count)
    pos = (start - (torch.cumsum(count, 0) - count))[k] + torch.arange(k.numel())
    third = rank_dst[order][pos]           # the layer of the out-edge's outer hit
    g = torch.where(third >= 0, table[pair[rows][k] * n_layers + third.clamp(min=0)].long(), -1)
    gi = g.clamp(min=0)
    # Δcot θ inside its own triplet's window first (the search used the union over the outer
    # layers), then the turning angle on the survivors; both as ``triplet_features`` computes them
    dcot = (cot[order][pos] - cot[rows][k]) * dcot_scale
    sel = torch.nonzero((g >= 0) & (dcot >= lo[:, 1][gi]) & (dcot <= hi[:, 1][gi])).squeeze(1)
    k, pos, gi = k[sel], pos[sel], gi[sel]
    turn = (torch.remainder(psi[order][pos] - psi[rows][k] + math.pi, 2 * math.pi) - math.pi) * turn_scale
    inside = (turn >= lo[:, 0][gi]) & (turn <= hi[:, 0][gi])
    keep[rows[k[inside]]] = True
    keep[order[pos[inside]]] = True
    return keep
