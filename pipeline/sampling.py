"""Training samples cut from whole events: overlapping (eta, phi) sectors, each a sub-graph with
its own hits, an overlap for context and ``core_edge`` marking the edges it is trained on."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from trkx.event import hit_eta, select_edges
from trkx.stage import declare_edge_field, edge_fields

declare_edge_field("core_edge")   # a per-edge field of sector samples: edge selection keeps it aligned


@dataclass
class SamplingConfig:
    """Training samples cut from whole events: ``eta_sectors`` x ``phi_sectors`` overlapping
    sectors per event (1 x 1: the whole event), at most ``max_edges`` edges per sample (0: all)."""
    eta_sectors: int = 1
    phi_sectors: int = 1
    overlap: float = 0.1          # sectors reach this far (in eta and in phi, rad) beyond their core
    max_edges: int = 0

    def validate(self) -> None:
        if self.eta_sectors < 1 or self.phi_sectors < 1:
            raise ValueError("sampling: need eta_sectors >= 1 and phi_sectors >= 1")
        if self.overlap < 0 or self.max_edges < 0:
            raise ValueError("sampling: need overlap >= 0 and max_edges >= 0")

    @property
    def n_sectors(self) -> int:
        return self.eta_sectors * self.phi_sectors


def sector_masks(event: Data, cfg: SamplingConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(hits in the sector with its overlap, hits in its core) for every sector.  Cores tile the
    event: eta bins hold equal numbers of hits, phi bins are equal in angle."""
    eta, phi = hit_eta(event), event.phi
    q = torch.linspace(0, 1, cfg.eta_sectors + 1)[1:-1]
    inner = torch.quantile(eta, q) if cfg.eta_sectors > 1 else torch.zeros(0)
    eta_edges = torch.cat([torch.tensor([-float("inf")]), inner, torch.tensor([float("inf")])])
    width = 2 * math.pi / cfg.phi_sectors
    out = []
    for i in range(cfg.eta_sectors):
        lo, hi = eta_edges[i], eta_edges[i + 1]
        in_eta = (eta >= lo) & (eta < hi)
        near_eta = (eta >= lo - cfg.overlap) & (eta < hi + cfg.overlap)
        for j in range(cfg.phi_sectors):
            if cfg.phi_sectors == 1:
                in_phi = near_phi = torch.ones_like(in_eta)
            else:
                # phi offset from the sector's centre, wrapped to [-pi, pi)
                d = torch.remainder(phi - (-math.pi + (j + 0.5) * width) + math.pi, 2 * math.pi) - math.pi
                in_phi = (d >= -width / 2) & (d < width / 2)
                near_phi = d.abs() < width / 2 + cfg.overlap
            out.append((near_eta & near_phi, in_eta & in_phi))
    return out


def node_subgraph(event: Data, nodes: torch.Tensor) -> Data:
    """The event restricted to the hits in mask ``nodes``: per-hit fields, the edges and truth
    edges with both ends inside (renumbered), per-edge fields aligned."""
    n = event.num_nodes
    new_id = torch.full((n,), -1, dtype=torch.long)
    new_id[nodes] = torch.arange(int(nodes.sum()))
    sub = Data(num_nodes=int(nodes.sum()))
    per_edge = edge_fields()
    keep_edges = nodes[event.edge_index[0]] & nodes[event.edge_index[1]] if "edge_index" in event else None
    for key, value in event.items():
        if key in ("edge_index", "track_edges"):
            keep = nodes[value[0]] & nodes[value[1]]
            sub[key] = new_id[value[:, keep]]
        elif key in per_edge:
            sub[key] = value[keep_edges]
        elif torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == n and key != "num_nodes":
            sub[key] = value[nodes]
        elif key != "num_nodes":
            sub[key] = value
    return sub


def sector_samples(event: Data, cfg: SamplingConfig, generator: torch.Generator | None = None) -> list[Data]:
    """Training samples of one event: one sub-graph per sector (its hits, its overlap and the far
    ends of its core hits' edges), with ``core_edge`` marking the edges whose inner hit lies in
    the sector's core: each edge of the event is a core edge of exactly one sector.  Samples with
    more than ``max_edges`` edges keep a random ``max_edges`` of them."""
    samples = []
    for nodes, core in sector_masks(event, cfg):
        if cfg.n_sectors == 1:
            sub = event.clone()
        else:
            # every edge leaving a core hit is in the sample, whatever its length
            ei = event.edge_index
            nodes = nodes.clone()
            nodes[ei[1, core[ei[0]]]] = True
            sub = node_subgraph(event, nodes)
            sub.core_edge = core[nodes][sub.edge_index[0]].float()
        n_edges = sub.edge_index.shape[1]
        if 0 < cfg.max_edges < n_edges:
            pick = torch.sort(torch.randperm(n_edges, generator=generator)[: cfg.max_edges]).values
            sub = select_edges(sub, pick)
        if sub.edge_index.shape[1]:
            samples.append(sub)
    return samples


class SectorSamples(torch.utils.data.Dataset):
    """The sector samples of a set of events, cut once per event on first use and kept in memory."""

    def __init__(self, events, cfg: SamplingConfig, seed: int = 0):
        self.events, self.cfg, self.seed = events, cfg, seed
        self.cache: dict[int, list[Data]] = {}
        self.index = [(i, j) for i in range(len(events)) for j in range(cfg.n_sectors)]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        i, j = self.index[k]
        if i not in self.cache:
            gen = torch.Generator().manual_seed(self.seed * 100003 + i)
            self.cache[i] = sector_samples(self.events[i], self.cfg, gen)
        samples = self.cache[i]
        return samples[j % len(samples)]   # an empty sector is replaced by another of its event
