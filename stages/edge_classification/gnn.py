"""Interaction GNN edge classifier: encoders, N message-passing iterations with residuals, an edge
decoder.  Optional heterogeneous variant (one node network per detector region, one edge network
per unordered region pair), gradient checkpointing and mixed precision."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from trkx.stage import register
from trkx.stages.track_building.assignment import blackbox_assignment, hamming_loss
from trkx.stages.common import (EDGE_FEATURES, EDGE_FIELDS, ModelStage, SamplingConfig, TrackingModule,
                                edge_efficiency_purity, edge_features, edge_training_targets, make_mlp, select_edges,
                                weighted_bce)


@dataclass
class GNNConfig:
    hidden: int = 64
    n_iterations: int = 6
    mlp_layers: int = 2
    aggregation: Literal["sum", "mean", "max"] = "sum"
    layernorm: bool = True
    activation: str = "silu"
    heterogeneous: bool = False
    n_regions: int = 3
    checkpointing: Literal["none", "partial", "maximal"] = "none"
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    loss: Literal["bce", "blackbox"] = "bce"    # predict-then-track | predict-and-track
    blackbox_lambda: float = 1.0                # blackbox interpolation λ, in logit units per edge
    bce_weight: float = 0.0                     # BCE added to the Hamming loss in blackbox mode
    pos_weight: float = 1.0
    epochs: int = 20
    lr: float = 2e-3
    weight_decay: float = 1e-5
    cut: float = 0.0                            # drop edges with gnn_score < cut at inference
    compile: bool = False                       # torch.compile the network for inference
    pt_min_eval: float = 1.0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)   # sector training samples

    inference_only: ClassVar[tuple[str, ...]] = ("compile",)   # not in the training fingerprint

    def validate(self) -> None:
        if self.hidden < 1 or self.n_iterations < 1 or self.mlp_layers < 2:
            raise ValueError("gnn: need hidden >= 1, n_iterations >= 1, mlp_layers >= 2")
        if self.blackbox_lambda <= 0:
            raise ValueError("key 'blackbox_lambda': must be positive")
        if self.activation not in ("silu", "relu", "tanh", "gelu"):
            raise ValueError(f"key 'activation': unknown {self.activation!r}")


class GroupedMLP(nn.Module):
    """One MLP per group (detector region or region pair); rows are routed by ``group``."""

    def __init__(self, n_groups: int, *mlp_args, **mlp_kw):
        super().__init__()
        self.nets = nn.ModuleList([make_mlp(*mlp_args, **mlp_kw) for _ in range(n_groups)])

    def forward(self, inp: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
        if len(self.nets) == 1:
            return self.nets[0](inp)
        idx, outs = [], []
        for g, net in enumerate(self.nets):
            rows = torch.nonzero(group == g).squeeze(-1)
            if rows.numel():
                idx.append(rows)
                outs.append(net(inp.index_select(0, rows)))
        order = torch.cat(idx)
        out = torch.cat(outs)
        return out.index_select(0, torch.argsort(order))

    def forward_edges(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, e: torch.Tensor,
                      group: torch.Tensor | None, project: bool = True) -> torch.Tensor:
        """The MLP of ``[h[src], h[dst], e]`` per edge.  With one group the first layer is applied
        to the nodes before the gather: W·[h_s, h_d, e] = (W_s·h)[src] + (W_d·h)[dst] + W_e·e,
        so per edge it costs one (edge_dim x out) product instead of ((2 node_dim + edge_dim) x out)."""
        if len(self.nets) > 1 or not project:
            return self(torch.cat([h.index_select(0, src), h.index_select(0, dst), e], -1), group)
        first, rest = self.nets[0][0], self.nets[0][1:]
        d = h.shape[1]
        w_s, w_d, w_e = first.weight[:, :d], first.weight[:, d:2 * d], first.weight[:, 2 * d:]
        node = h @ torch.cat([w_s, w_d]).t()                     # (N, 2 out): both projections at once
        out = node[:, :w_s.shape[0]].index_select(0, src) + node[:, w_s.shape[0]:].index_select(0, dst)
        out = torch.addmm(out, e, w_e.t()) + first.bias
        return rest(out)


def region_pair(region_src: torch.Tensor, region_dst: torch.Tensor, n_regions: int) -> torch.Tensor:
    """Index of the unordered pair {a, b} among n(n+1)/2 pairs."""
    a, b = torch.minimum(region_src, region_dst), torch.maximum(region_src, region_dst)
    return a * n_regions - a * (a - 1) // 2 + (b - a)


class InteractionGNN(nn.Module):
    # the edge MLPs' first layer on the nodes before the gather (same function, fewer operations);
    # False concatenates per edge, kept for the inference benchmark
    node_projection = True

    def __init__(self, node_dim: int, edge_dim: int, cfg: GNNConfig):
        super().__init__()
        self.cfg = cfg
        h, L = cfg.hidden, cfg.mlp_layers
        n_node = cfg.n_regions if cfg.heterogeneous else 1
        n_edge = cfg.n_regions * (cfg.n_regions + 1) // 2 if cfg.heterogeneous else 1
        kw = dict(activation=cfg.activation, layernorm=cfg.layernorm)
        self.node_encoder = GroupedMLP(n_node, node_dim, h, h, L, out_activation=True, **kw)
        self.edge_encoder = GroupedMLP(n_edge, 2 * h + edge_dim, h, h, L, out_activation=True, **kw)
        self.edge_network = GroupedMLP(n_edge, 3 * h, h, h, L, out_activation=True, **kw)
        self.node_network = GroupedMLP(n_node, 3 * h, h, h, L, out_activation=True, **kw)
        self.decoder = GroupedMLP(n_edge, 3 * h, h, 1, L, **kw)

    def _maybe_ckpt(self, fn, *args, level: str):
        order = {"none": 0, "partial": 1, "maximal": 2}
        if self.training and order[self.cfg.checkpointing] >= order[level]:
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, x, edge_index, efeat, region=None):
        src, dst = edge_index
        n = x.shape[0]
        proj = self.node_projection
        ng = eg = None
        if self.cfg.heterogeneous:
            ng = region
            eg = region_pair(region[src], region[dst], self.cfg.n_regions)

        def encode(x, efeat):
            h = self.node_encoder(x, ng)
            return h, self.edge_encoder.forward_edges(h, src, dst, efeat, eg, proj)

        def iteration(h, e):
            e = self.edge_network.forward_edges(h, src, dst, e, eg, proj) + e
            agg_in = scatter(e, dst, 0, dim_size=n, reduce=self.cfg.aggregation)
            agg_out = scatter(e, src, 0, dim_size=n, reduce=self.cfg.aggregation)
            h = self.node_network(torch.cat([h, agg_in, agg_out], -1), ng) + h
            return h, e

        def decode(h, e):
            return self.decoder.forward_edges(h, src, dst, e, eg, proj).squeeze(-1)

        h, e = self._maybe_ckpt(encode, x, efeat, level="maximal")
        for _ in range(self.cfg.n_iterations):
            h, e = self._maybe_ckpt(iteration, h, e, level="partial")
        return self._maybe_ckpt(decode, h, e, level="maximal")


class GNNModule(TrackingModule):
    def __init__(self, node_dim: int, cfg: GNNConfig):
        super().__init__(cfg)
        self.net = InteractionGNN(node_dim, len(EDGE_FEATURES), cfg)

    def forward(self, event: Data) -> torch.Tensor:
        return self.net(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)

    def training_step(self, event: Data, batch_idx: int):
        logits = self(event).float()
        if event.edge_index.shape[1] == 0:
            return None
        target, weight = edge_training_targets(event)
        bce = weighted_bce(logits, target, weight, self.cfg.pos_weight)
        if self.cfg.loss == "bce":
            loss = bce
        else:
            loss = self.assignment_loss(logits, event, target) + self.cfg.bce_weight * bce
        self.log("train_loss", loss, batch_size=1)
        return loss

    def assignment_loss(self, logits: torch.Tensor, event: Data, target: torch.Tensor) -> torch.Tensor:
        """Hamming distance per hit between the assigned edges and the truth, differentiated
        through the assignment solver (blackbox)."""
        # dL/dy = ±1/N here; λ·N makes the solver's perturbation ±λ in logit units whatever the
        # event size (with λ alone it is ±λ/N, too small to flip edges: a vanishing gradient)
        norm = max(event.num_nodes, 1)
        y_hat = blackbox_assignment(logits, event.edge_index, self.cfg.blackbox_lambda * norm)
        return hamming_loss(y_hat, target) / norm

    def validation_step(self, event: Data, batch_idx: int):
        keep = torch.sigmoid(self(event).float()) >= 0.5
        self.record_validation(edge_efficiency_purity(event, keep, self.cfg.pt_min_eval))


def autocast_context(precision: str, device: torch.device):
    """Mixed-precision inference context; fp16 needs CUDA, so on CPU both mixed modes use bf16."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if (precision == "16-mixed" and device.type == "cuda") else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@register("gnn")
class EdgeClassifier(ModelStage):
    """Adds ``gnn_score`` per edge (and drops edges below ``cut``)."""
    role = "edge_classification"
    Config = GNNConfig
    Module = GNNModule
    score_field = "gnn_score"

    def edge_keep(self, event: Data) -> torch.Tensor:
        return event.gnn_score >= 0.5

    def network(self):
        """The network inference calls: compiled on first use when ``compile`` is set (shapes
        change from event to event, so it is compiled for dynamic shapes)."""
        if not self.config.compile:
            return self.model.net
        if getattr(self, "_compiled", None) is None:
            self._compiled = torch.compile(self.model.net, dynamic=True)
        return self._compiled

    def infer(self, event: Data) -> Data:
        event = event.to(self.device)
        with autocast_context(self.config.precision, self.device):
            logits = self.network()(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)
        score = torch.sigmoid(logits.float()).cpu()
        event = event.cpu()
        event.gnn_score = score
        if self.config.cut > 0:
            event = select_edges(event, score >= self.config.cut, EDGE_FIELDS)
        return event
