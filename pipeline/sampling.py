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


@dataclass
class SectorSelection:
    """One sector sample of an event, as what to take from it: the hits (indices), which of them
    are core hits, and the kept edge positions when ``max_edges`` cut the sample (else None)."""
    nodes: torch.Tensor
    core: torch.Tensor
    pick: torch.Tensor | None = None


def sector_selections(event: Data, cfg: SamplingConfig, generator: torch.Generator | None = None) -> list[SectorSelection]:
    """The non-empty sector samples of one event (``sector_samples`` builds them): each sector's
    hits with its overlap and the far ends of its core hits' edges; samples with more than
    ``max_edges`` edges keep a random ``max_edges`` of them."""
    out = []
    ei = event.edge_index
    for nodes, core in sector_masks(event, cfg):
        if cfg.n_sectors == 1:
            nodes = torch.ones(event.num_nodes, dtype=torch.bool)
        else:
            # every edge leaving a core hit is in the sample, whatever its length
            nodes = nodes.clone()
            nodes[ei[1, core[ei[0]]]] = True
        n_edges = int((nodes[ei[0]] & nodes[ei[1]]).sum())
        pick = None
        if 0 < cfg.max_edges < n_edges:
            pick = torch.sort(torch.randperm(n_edges, generator=generator)[: cfg.max_edges]).values
        if (pick.numel() if pick is not None else n_edges):
            out.append(SectorSelection(torch.nonzero(nodes).squeeze(1), core[nodes], pick))
    return out


def sector_sample(event: Data, sel: SectorSelection, n_sectors: int) -> Data:
    """The sample a ``SectorSelection`` names, with ``core_edge`` marking the edges whose inner hit
    lies in the sector's core: each edge of the event is a core edge of exactly one sector."""
    if n_sectors == 1:
        sub = event.clone()
    else:
        mask = torch.zeros(event.num_nodes, dtype=torch.bool)
        mask[sel.nodes] = True
        sub = node_subgraph(event, mask)
        sub.core_edge = sel.core[sub.edge_index[0]].float()
    return select_edges(sub, sel.pick) if sel.pick is not None else sub


def sector_samples(event: Data, cfg: SamplingConfig, generator: torch.Generator | None = None) -> list[Data]:
    """Training samples of one event: one sub-graph per non-empty sector (``sector_selections``)."""
    return [sector_sample(event, sel, cfg.n_sectors) for sel in sector_selections(event, cfg, generator)]


class SectorSamples(torch.utils.data.Dataset):
    """The sector samples of a set of events.  Each event is loaded once, on first use, and kept
    with its sectors' selections; a sample is cut from it when asked for, so that memory holds
    each event once rather than every sector's copy of its hits and edges (at tt̄ + 200 pile-up
    the copies of 160 events' 32 sectors peaked at 22 GB)."""

    def __init__(self, events, cfg: SamplingConfig, seed: int = 0):
        self.events, self.cfg, self.seed = events, cfg, seed
        self.cache: dict[int, tuple[Data, list[SectorSelection]]] = {}
        self.index = [(i, j) for i in range(len(events)) for j in range(cfg.n_sectors)]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        i, j = self.index[k]
        if i not in self.cache:
            gen = torch.Generator().manual_seed(self.seed * 100003 + i)
            event = self.events[i]
            self.cache[i] = (event, sector_selections(event, self.cfg, gen))
        event, selections = self.cache[i]
        # an empty sector is replaced by another of its event
        return sector_sample(event, selections[j % len(selections)], self.cfg.n_sectors)
