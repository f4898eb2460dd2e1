"""The event-graph data model shared by every stage (one torch_geometric ``Data`` per event).

Nodes: ``hit_id``, ``x`` (scaled features), ``r``, ``phi``, ``z``, ``region``, ``volume_id``,
``layer_id``, ``module_id``; truth ``particle_id`` (0 = noise), ``pt`` and ``eta`` of the
particle, ``weight`` (TrackML hit weight).
Edges: ``edge_index`` (2, E), truth ``y``, one score per scoring stage (``filter_score``, ``gnn_score``).
Truth graph: ``track_edges`` (2, T), consecutive hits of each particle ordered by distance
from its production vertex.  Labels: ``track_id`` per hit, -1 for unassigned.
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

REGION_NAMES = ("pixel", "short_strip", "long_strip")


def edge_truth(event: Data, edge_index: torch.Tensor) -> torch.Tensor:
    """True where both ends of an edge belong to the same (non-noise) particle."""
    pid = event.particle_id
    src, dst = edge_index
    return (pid[src] == pid[dst]) & (pid[src] != 0)
