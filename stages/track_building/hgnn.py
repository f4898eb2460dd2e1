"""Hierarchical GNN track builder (Liu et al. 2023): ``trkx.models.HierarchicalGNN`` over the
constructed graph pools hits into super-nodes, passes messages at both levels and scores every
(hit, super-node) pair and every super-graph edge; each hit joins its best-scoring super-node
when that score passes ``cut`` (the paper's bipartite classification), and super-nodes joined by
an edge scoring ``super_cut`` or more form one track.  It reads the graph,
not edge scores, and trains on (eta, phi) sector samples like the GNN."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch_geometric.data import Data

from trkx.event import EDGE_FEATURES, edge_features
from trkx.losses import HierarchicalLoss
from trkx.models.hgnn import HGNNConfig, HierarchicalGNN
from trkx.stage import TrackBuilder, register
from trkx.stages.track_building.labeling import connected_component_labels, drop_small
from trkx.training import CondensationModule, LightningStage, SampledTrainingConfig


@dataclass
class HGNNStageConfig(HGNNConfig, SampledTrainingConfig):
    """The network's keys (``HGNNConfig``), the training ones and the track selection."""
    hidden: int = 32
    n_iterations: int = 3          # hit-level message passes before the pooling
    pos_weight: float = 1.0
    embedding_weight: float = 1.0  # weight of the pooling space's hinge loss
    cut: float = 0.5               # a hit joins its best super-node when the pair's score reaches this
    super_cut: float = 0.5         # two super-nodes are one track when their edge's score reaches this
    min_hits: int = 3              # smaller tracks are left unassigned (-1)

    inference_only: ClassVar[tuple[str, ...]] = ("quantize", "cut", "super_cut", "min_hits")

    def validate(self) -> None:
        HGNNConfig.validate(self)
        if not (0.0 <= self.cut <= 1.0 and 0.0 <= self.super_cut <= 1.0) or self.min_hits < 1 or self.embedding_weight < 0:
            raise ValueError("hgnn: need cut and super_cut in [0, 1], min_hits >= 1, embedding_weight >= 0")
        if self.quantize != "none":
            raise ValueError("key 'quantize': hgnn runs in fp32 only")


def assign_hits(out: dict, n: int, cut: float, super_cut: float) -> np.ndarray:
    """Each hit's track: its best super-node by pair score (-1 where none reaches ``cut``), with
    super-nodes joined where their super-graph edge scores ``super_cut`` or more (connected
    components of the super-nodes)."""
    labels = np.full(n, -1, dtype=np.int64)
    if not out["n_super"]:
        return labels
    joined = out["super_edges"][:, torch.sigmoid(out["super_logit"].detach().float()) >= super_cut]
    track_of = connected_component_labels(joined, out["n_super"])
    hit, sup = out["pairs"]
    score = torch.sigmoid(out["logit"].detach().float())
    best = torch.full((n,), -1.0).scatter_reduce(0, hit, score, "amax")
    top = torch.nonzero((score >= best[hit]) & (score >= cut)).squeeze(1)
    labels[hit[top].numpy()] = track_of[sup[top].numpy()]    # ties: one of the tied super-nodes
    return labels


@register("hgnn")
class HGNN(LightningStage, TrackBuilder):
    """Adds ``track_id`` per hit: the super-node it joins."""
    Config = HGNNStageConfig
    needs_edge_scores = False

    def requires(self) -> tuple[str, ...]:
        return ("graph_construction",)

    def build(self, in_dim: int) -> CondensationModule:
        c = self.config
        net = HierarchicalGNN(in_dim, len(EDGE_FEATURES), c)
        return CondensationModule(net, HierarchicalLoss(c.pos_weight, c.embedding_weight, 2 * c.pool_radius), c)

    def export(self, event: Data):
        raise NotImplementedError("hgnn has no TorchScript export (its pooling runs scipy; no C++ port)")

    @torch.no_grad()
    def infer(self, event: Data) -> Data:
        event = event.to(self.device)
        out = self.model.net(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)
        event = event.cpu()
        labels = assign_hits({k: (v.cpu() if torch.is_tensor(v) else v) for k, v in out.items()}, event.num_nodes,
                             self.config.cut, self.config.super_cut)
        event.track_id = torch.as_tensor(drop_small(labels, self.config.min_hits), dtype=torch.long)
        return event
