"""Graph building: fixed-radius neighbourhoods of the embedded hits become the event's edges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch_geometric.data import Data

from trkx.event import edge_truth
from trkx.stage import Stage, register
from trkx.stages.graph_construction.frnn import build_edges


def outward(event: Data, edges: torch.Tensor) -> torch.Tensor:
    """The same edges, each pointing outwards (from the hit nearer the origin; ties by index)."""
    if edges.numel() == 0:
        return edges
    dist = torch.sqrt(event.r.double() ** 2 + event.z.double() ** 2).to(edges.device)
    src, dst = edges
    flip = (dist[src] > dist[dst]) | ((dist[src] == dist[dst]) & (src > dst))
    return torch.stack([torch.where(flip, dst, src), torch.where(flip, src, dst)])


def orient_and_dedup(event: Data, edges: torch.Tensor) -> torch.Tensor:
    """Undirected unique edges, each pointing outwards (from the hit nearer the origin)."""
    if edges.numel() == 0:
        return edges
    src, dst = outward(event, edges)
    n = event.num_nodes
    key = torch.unique(src * n + dst)
    return torch.stack([key // n, key % n])


@dataclass
class GraphConfig:
    r: float = 0.1
    k_max: int = 64
    backend: Literal["auto", "grid", "kdtree", "faiss", "cuda"] = "auto"
    feature: str = "embedding"      # node field to search in

    def validate(self) -> None:
        if self.r <= 0 or self.k_max < 1:
            raise ValueError("graph: need r > 0 and k_max >= 1")


@register("graph")
class GraphBuilding(Stage):
    """Adds ``edge_index`` (outward, unique) and truth ``y`` from a radius search on ``feature``."""
    role = "graph_construction"
    Config = GraphConfig

    def infer(self, event: Data) -> Data:
        if self.config.feature not in event:
            raise ValueError(f"graph: event has no field {self.config.feature!r} (run the embedding first)")
        points = event[self.config.feature].to(self.device)
        edges = build_edges(points, self.config.r, self.config.k_max, self.config.backend).cpu()
        event.edge_index = orient_and_dedup(event, edges)
        event.y = edge_truth(event, event.edge_index)
        return event
