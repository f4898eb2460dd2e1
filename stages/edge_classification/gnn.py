"""Interaction GNN edge classification stage: scores every edge (``gnn_score``) with
``trkx.models.InteractionGNN``, trained by BCE ("predict then track") or through the assignment
solver ("predict and track"); mixed precision, gradient checkpointing, torch.compile at inference."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch_geometric.data import Data

from trkx.aot import AheadOfTimeCompiled
from trkx.event import EDGE_FEATURES, edge_features, select_edges
from trkx.losses import AssignmentLoss, EdgeBCELoss
from trkx.models import InteractionGNN, InteractionGNNConfig, LineGraphGNN, SO2GNN
from trkx.stage import EdgeClassifier, register
from trkx.training import EdgeClassifierModule, LightningStage, SampledTrainingConfig, autocast_context


@dataclass
class SO2Config:
    """The SO(2) network's own keys: its equivariant channels and where r and φ are in ``x``."""
    vector_channels: int = 4      # equivariant 2-vectors per hit
    r_column: int = 0             # the column of x holding r (any scale) ...
    phi_column: int = 1           # ... and the one holding φ / phi_scale (data: features [r, phi, z])
    phi_scale: float = math.pi

    def validate(self) -> None:
        if self.vector_channels < 1:
            raise ValueError("key 'so2.vector_channels': must be >= 1")
        if self.r_column < 0 or self.phi_column < 0 or self.r_column == self.phi_column:
            raise ValueError("keys 'so2.r_column' / 'so2.phi_column': two different columns of x")


@dataclass
class GNNConfig(InteractionGNNConfig, SampledTrainingConfig):
    """The network's keys (``InteractionGNNConfig``), the training ones (``SampledTrainingConfig``)
    and the GNN's own (``precision`` is also the inference precision here)."""
    # interaction: edges scored by the interaction GNN; line_graph: by ``LineGraphGNN`` (Kortus et al.);
    # so2: by ``SO2GNN``, invariant under rotations about the beam axis (EuclidNet)
    architecture: Literal["interaction", "line_graph", "so2"] = field(default="interaction", metadata={"omit_default": True})
    so2: SO2Config = field(default_factory=SO2Config, metadata={"omit_default": True})
    loss: Literal["bce", "blackbox"] = "bce"    # predict-then-track | predict-and-track
    blackbox_lambda: float = 1.0                # blackbox interpolation λ, in logit units per edge
    bce_weight: float = 0.0                     # BCE added to the Hamming loss in blackbox mode
    pos_weight: float = 1.0
    cut: float = 0.0                            # drop edges with gnn_score < cut at inference
    compile: bool = False                       # torch.compile the network for inference

    inference_only: ClassVar[tuple[str, ...]] = ("compile",)   # not in the training fingerprint

    def validate(self) -> None:
        super().validate()
        if self.blackbox_lambda <= 0:
            raise ValueError("key 'blackbox_lambda': must be positive")
        if self.architecture != "interaction" and self.heterogeneous:
            raise ValueError(f"key 'heterogeneous': not supported with architecture '{self.architecture}'")


def gnn_module(node_dim: int, cfg: GNNConfig) -> EdgeClassifierModule:
    """The interaction GNN and its loss, as a Lightning module."""
    loss = EdgeBCELoss(cfg.pos_weight) if cfg.loss == "bce" else \
        AssignmentLoss(cfg.blackbox_lambda, cfg.bce_weight, cfg.pos_weight)
    if cfg.architecture == "so2":
        s = cfg.so2
        net = SO2GNN(node_dim, len(EDGE_FEATURES), cfg, s.vector_channels, s.r_column, s.phi_column, s.phi_scale)
    else:
        net_class = LineGraphGNN if cfg.architecture == "line_graph" else InteractionGNN
        net = net_class(node_dim, len(EDGE_FEATURES), cfg)
    return EdgeClassifierModule(net, loss, cfg, val_cut=0.5)


@register("gnn")
class GNNStage(AheadOfTimeCompiled, LightningStage, EdgeClassifier):
    """Adds ``gnn_score`` per edge (and drops edges below ``cut``)."""
    Config = GNNConfig
    score_field = "gnn_score"

    def build(self, in_dim: int) -> EdgeClassifierModule:
        return gnn_module(in_dim, self.config)

    def edge_keep(self, event: Data) -> torch.Tensor:
        return event.gnn_score >= 0.5

    def bench_options(self) -> dict[str, list]:
        """Inference precisions (fp16 needs CUDA; on CPU both mixed modes run in bf16)."""
        return {"precision": ["32", "bf16-mixed"] + (["16-mixed"] if torch.cuda.is_available() else [])}

    def network(self, inputs: tuple[torch.Tensor, ...]):
        """The network inference calls.  With ``compile`` (fp32): compiled ahead of time
        (AOTInductor, dynamic hit and edge counts) once per trained weights, the package kept
        beside them and loaded by every later process; under mixed precision, or where the
        network cannot be exported, ``torch.compile`` for dynamic shapes; an int8 network, and
        graphs of fewer than two hits or edges, run eagerly (a bf16 one compiles like fp32)."""
        # (a worker process of ``--workers`` turns compilation off: compiled kernels keep the
        # thread count they were made for)
        if not self.config.compile or self.exported or self.numbers == "int8" or \
                torch._dynamo.config.disable or min(inputs[0].shape[0], inputs[1].shape[1]) < 2:
            return self.model.net
        # one compiled network per thread count: inductor's kernels are written for the count
        # they are compiled at (see trkx.aot.package_name)
        compiled = self.__dict__.setdefault("_compiled", {})
        threads = torch.get_num_threads()
        if threads not in compiled:
            net = self._aot(inputs) if self.aot_enabled() else None
            compiled[threads] = net if net is not None else torch.compile(self.model.net, dynamic=True)
        return compiled[threads]

    def warm_up(self, event: Data) -> None:
        """With ``compile``: compile the network (or load its kept package) and run it once on
        ``event``, so that no event's time holds the compile wait."""
        if self.config.compile:
            self.infer(event)

    def aot_enabled(self) -> bool:
        """Whether inference runs ahead-of-time compiled (``compile`` in fp32 or bf16, not int8)."""
        return self.config.compile and self.config.precision == "32" and self.numbers != "int8"

    def cpp_lines(self) -> list[str]:
        lines = super().cpp_lines()
        return [f"{lines[0]} aoti aoti/{self.name}.pt2"] if self.aot_enabled() else lines

    def infer(self, event: Data) -> Data:
        event = event.to(self.device)
        inputs = (event.x, event.edge_index, edge_features(event, event.edge_index), event.region)
        with autocast_context(self.config.precision, self.device):
            logits = self.network(inputs)(*inputs)
        score = torch.sigmoid(logits.float()).cpu()
        event = event.cpu()
        event.gnn_score = score
        if self.config.cut > 0:
            event = select_edges(event, score >= self.config.cut)
        return event
