"""The event-graph data model shared by every stage (one torch_geometric ``Data`` per event).

Nodes: ``hit_id``, ``x`` (scaled features), ``r``, ``phi``, ``z``, ``region``, ``volume_id``,
``layer_id``, ``module_id``; truth ``particle_id`` (0 = noise), ``pt`` and ``eta`` of the
particle, ``weight`` (TrackML hit weight).
Edges: ``edge_index`` (2, E) and the per-edge fields the stages declare (``Stage.edge_fields``):
truth ``y`` from graph construction, one score per edge classifier (``filter_score``, ``gnn_score``).
Truth graph: ``track_edges`` (2, T), consecutive hits of each particle ordered by distance
from its production vertex.  Labels: ``track_id`` per hit, -1 for unassigned.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch_geometric.data import Data


def edge_truth(event: Data, edge_index: torch.Tensor) -> torch.Tensor:
    """True where both ends of an edge belong to the same (non-noise) particle."""
    pid = event.particle_id
    src, dst = edge_index
    return (pid[src] == pid[dst]) & (pid[src] != 0)


def track_edge_truth(event: Data, edge_index: torch.Tensor | None = None) -> torch.Tensor:
    """Per edge: is it a consecutive truth track edge (either direction)?"""
    n = event.num_nodes
    ei = event.edge_index if edge_index is None else edge_index
    tt = event.track_edges
    keys = torch.cat([tt[0] * n + tt[1], tt[1] * n + tt[0]])
    return torch.isin(ei[0] * n + ei[1], keys)


def hit_eta(event: Data) -> torch.Tensor:
    """Pseudorapidity of each hit's position."""
    return torch.asinh(event.z / event.r.clamp_min(1e-6))


EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "phi_slope", "z0")
DZ_SCALE = 100.0   # mm: the Δz feature is Δz / DZ_SCALE


def edge_features(event: Data, edge_index: torch.Tensor) -> torch.Tensor:
    """(E, 6) geometric edge features, each scaled to order one for true edges, of the set the
    event's ``geometry`` names (``register_edge_features``; a data source whose layers are not
    cylinders around the beam registers its own, as proton CT's does).  Collider events
    (``cylindrical``, the default): ``edge_features_from``."""
    geometry = getattr(event, "geometry", "cylindrical")
    if geometry not in EDGE_FEATURE_SETS:
        from trkx.stage import registered_stages
        registered_stages()          # the built-in stages register theirs when they are imported
    if geometry not in EDGE_FEATURE_SETS:
        raise ValueError(f"event {getattr(event, 'event_id', '?')}: no edge features registered for geometry "
                         f"{geometry!r} (known: {', '.join(sorted(EDGE_FEATURE_SETS))})")
    return EDGE_FEATURE_SETS[geometry](event, edge_index)


EDGE_FEATURE_SETS: dict[str, Callable[[Data, torch.Tensor], torch.Tensor]] = {
    "cylindrical": lambda event, edge_index: edge_features_from(event.r, event.phi, event.z, edge_index)}


def register_edge_features(geometry: str):
    """Decorator: ``fn(event, edge_index) -> (E, 6)`` computes the edge features of events whose
    ``geometry`` is ``geometry`` (six, as the collider set, so that every edge network takes them)."""
    def wrap(fn):
        EDGE_FEATURE_SETS[geometry] = fn
        return fn
    return wrap


def hit_xy(event: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """Each hit's transverse Cartesian coordinates (mm) from its stored r and φ."""
    return event.r * torch.cos(event.phi), event.r * torch.sin(event.phi)


def group_products(count_a: torch.Tensor, count_b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every (group g, i, j) with i < count_a[g] and j < count_b[g]: the per-group Cartesian
    products of two grouped index sets, vectorised (group-major, then i, then j)."""
    per = count_a * count_b
    group = torch.repeat_interleave(torch.arange(per.numel(), device=per.device), per)
    local = torch.arange(int(per.sum()), device=per.device) - torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
    return group, torch.div(local, count_b[group], rounding_mode="floor"), local % count_b[group]


def edge_features_from(r: torch.Tensor, phi: torch.Tensor, z: torch.Tensor, edge_index: torch.Tensor,
                       dz_scale: float = DZ_SCALE) -> torch.Tensor:
    """``edge_features`` from the hits' cylindrical coordinates (mm, rad); TorchScript-able."""
    src, dst = edge_index[0], edge_index[1]
    eta = torch.asinh(z / r.clamp_min(1e-6))
    dr = r[dst] - r[src]
    dz = z[dst] - z[src]
    dphi = torch.remainder(phi[dst] - phi[src] + math.pi, 2 * math.pi) - math.pi
    safe_dr = torch.where(dr.abs() < 1.0, torch.where(dr < 0, -1.0, 1.0), dr)   # mm
    phi_slope = (dphi / safe_dr * 1000.0).clamp(-10.0, 10.0)                     # rad per metre
    z0 = ((z[src] - r[src] * dz / safe_dr) / 1000.0).clamp(-5.0, 5.0)             # metres
    return torch.stack([dr / 100.0, dphi * 10.0, dz / dz_scale, (eta[dst] - eta[src]) * 10.0, phi_slope, z0], dim=-1)


def select_edges(event: Data, keep: torch.Tensor, fields: tuple[str, ...] | None = None) -> Data:
    """Keep the edges where ``keep`` is True (a mask or positions) in ``edge_index`` and in every
    per-edge field: those named, or by default every field a stage declares
    (``trkx.stage.edge_fields``)."""
    if fields is None:
        from trkx.stage import edge_fields
        fields = edge_fields()
    event.edge_index = event.edge_index[:, keep]
    for f in fields:
        if f in event:
            event[f] = event[f][keep]
    return event


def outward(event: Data, edges: torch.Tensor) -> torch.Tensor:
    """The same edges, each pointing outwards (from the hit nearer the origin; ties by index)."""
    return outward_edges(edges, event.r.to(edges.device), event.z.to(edges.device))


def orient_and_dedup(event: Data, edges: torch.Tensor) -> torch.Tensor:
    """Undirected unique edges, each pointing outwards (from the hit nearer the origin)."""
    return unique_outward_edges(edges, event.r.to(edges.device), event.z.to(edges.device), event.num_nodes)


def outward_edges(edges: torch.Tensor, r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``outward`` from the hits' r and z (mm); TorchScript-able."""
    if edges.numel() == 0:
        return edges
    dist = torch.sqrt(r.double() ** 2 + z.double() ** 2)
    src, dst = edges[0], edges[1]
    flip = (dist[src] > dist[dst]) | ((dist[src] == dist[dst]) & (src > dst))
    return torch.stack([torch.where(flip, dst, src), torch.where(flip, src, dst)])


def unique_outward_edges(edges: torch.Tensor, r: torch.Tensor, z: torch.Tensor, n: int) -> torch.Tensor:
    """``orient_and_dedup`` from the hits' r and z (mm) and the hit count; TorchScript-able."""
    if edges.numel() == 0:
        return edges
    out = outward_edges(edges, r, z)
    key = torch.unique(out[0] * n + out[1])
    return torch.stack([key // n, key % n])
