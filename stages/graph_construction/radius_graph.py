"""Radius graph: fixed-radius neighbourhoods of the embedded hits (or any per-hit field) become
the event's edges, found by one of the FRNN backends of ``frnn``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch_geometric.data import Data

from trkx.event import edge_truth, orient_and_dedup
from trkx.ops.frnn import available_backends, build_edges
from trkx.stage import GraphConstructor, NoCppPort, register


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
class RadiusGraph(GraphConstructor):
    """Adds ``edge_index`` (outward, unique) and truth ``y`` from a radius search on ``feature``."""
    Config = GraphConfig

    def requires(self) -> tuple[str, ...]:
        return ("embedding",) if self.config.feature == "embedding" else ()

    def bench_options(self) -> dict[str, list]:
        return {"backend": available_backends()}      # the FRNN backends importable here

    def cpp_lines(self) -> list[str]:
        if self.config.feature != "embedding":
            raise NoCppPort(f"stage '{self.name}' searches {self.config.feature!r}, not the embedding")
        return [f"graph {self.name} r {self.config.r!r} k_max {self.config.k_max}"]

    def infer(self, event: Data) -> Data:
        if self.config.feature not in event:
            raise ValueError(f"graph: event has no field {self.config.feature!r} (run the embedding first)")
        points = event[self.config.feature].to(self.device)
        edges = build_edges(points, self.config.r, self.config.k_max, self.config.backend).cpu()
        event.edge_index = orient_and_dedup(event, edges)
        event.y = edge_truth(event, event.edge_index)
        return event
