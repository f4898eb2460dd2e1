"""A deliberately worse graph, for robustness studies: a random share of the true edges (two hits
of one particle) is dropped so that the graph keeps ``efficiency`` of them, the same draw for an
event whatever else runs (seeded from ``seed`` and the event id).  Placed after a graph
constructor (or after an edge filter), it measures how a later stage copes with the edges a
worse graph construction would have lost."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from trkx.event import select_edges
from trkx.stage import GraphConstructor, register


@dataclass
class DegradeConfig:
    efficiency: float = 0.95      # share of the true edges kept
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.efficiency <= 1.0:
            raise ValueError("key 'efficiency': must lie in [0, 1]")


@register("degrade")
class DegradeGraph(GraphConstructor):
    """Drops true edges at random until ``efficiency`` of them are left (false edges all stay)."""
    Config = DegradeConfig

    def requires(self) -> tuple[str, ...]:
        return ("graph_construction",)

    def infer(self, event: Data) -> Data:
        true = torch.nonzero(event.y.bool()).squeeze(1)
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + int(event.event_id))
        n_drop = true.numel() - round(self.config.efficiency * true.numel())
        keep = torch.ones(event.edge_index.shape[1], dtype=torch.bool)
        keep[true[torch.randperm(true.numel(), generator=g)[:n_drop]]] = False
        return select_edges(event, keep)
