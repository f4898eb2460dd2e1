"""Edge filter: an MLP scores each edge from its two hits' features and the edge geometry,
trained with weighted BCE; edges below the cut are removed."""
from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import nn
from torch_geometric.data import Data

from trkx.stage import TrainableStage, register
from trkx.stages.common import (EDGE_FEATURES, EDGE_FIELDS, EventDataModule, edge_efficiency_purity, edge_features,
                                edge_training_targets, make_mlp, make_trainer, select_edges, weighted_bce)


@dataclass
class FilterConfig:
    hidden: int = 256
    layers: int = 4
    activation: str = "silu"
    layernorm: bool = True
    pos_weight: float = 2.0
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-5
    edges_per_batch: int = 200000  # edges of an event are scored in chunks of this size
    train_edges: int = 40000      # random edges per event and training step (0: all)
    cut: float = 0.05             # keep edges with filter_score >= cut
    pt_min_eval: float = 1.0

    def validate(self) -> None:
        if not 0.0 <= self.cut <= 1.0:
            raise ValueError("key 'cut': must lie in [0, 1]")
        if self.activation not in ("silu", "relu", "tanh", "gelu"):
            raise ValueError(f"key 'activation': unknown {self.activation!r}")


class FilterNet(nn.Module):
    def __init__(self, node_dim: int, cfg: FilterConfig):
        super().__init__()
        self.mlp = make_mlp(2 * node_dim + len(EDGE_FEATURES), cfg.hidden, 1, cfg.layers, cfg.activation, cfg.layernorm)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, efeat: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x.index_select(0, edge_index[0]), x.index_select(0, edge_index[1]), efeat], -1)).squeeze(-1)


class FilterModule(pl.LightningModule):
    def __init__(self, node_dim: int, cfg: FilterConfig):
        super().__init__()
        self.cfg = cfg
        self.net = FilterNet(node_dim, cfg)
        self.history: list[dict] = []

    def forward(self, event: Data) -> torch.Tensor:
        ef = edge_features(event, event.edge_index)
        chunks = torch.split(torch.arange(event.edge_index.shape[1], device=event.x.device), self.cfg.edges_per_batch)
        return torch.cat([self.net(event.x, event.edge_index[:, c], ef[c]) for c in chunks]) if chunks else \
            torch.zeros(0, device=event.x.device)

    def training_step(self, event: Data, batch_idx: int):
        n_edges = event.edge_index.shape[1]
        if 0 < self.cfg.train_edges < n_edges:
            pick = torch.randperm(n_edges, device=event.x.device)[: self.cfg.train_edges]
            event = event.clone()
            event.edge_index, event.y = event.edge_index[:, pick], event.y[pick]
        target, weight = edge_training_targets(event)
        loss = weighted_bce(self(event), target, weight, self.cfg.pos_weight)
        self.log("train_loss", loss, batch_size=1)
        return loss

    def on_validation_epoch_start(self):
        self._val = []

    def validation_step(self, event: Data, batch_idx: int):
        keep = torch.sigmoid(self(event)) >= self.cfg.cut
        m = edge_efficiency_purity(event, keep, self.cfg.pt_min_eval)
        self.log_dict({"val_efficiency": m["efficiency"], "val_purity": m["purity"]}, batch_size=1, prog_bar=True)
        self._val.append(m)

    def on_validation_epoch_end(self):
        if self._val:
            self.history.append({"epoch": int(self.current_epoch),
                                 "efficiency": sum(m["efficiency"] for m in self._val) / len(self._val),
                                 "purity": sum(m["purity"] for m in self._val) / len(self._val)})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.cfg.epochs, 1))]


@register("filter")
class EdgeFilter(TrainableStage):
    """Adds ``filter_score`` and removes edges below ``cut``."""
    Config = FilterConfig
    score_field = "filter_score"

    def __init__(self, config: FilterConfig, **kw):
        super().__init__(config, **kw)
        self.model: FilterModule | None = None

    def _ensure_model(self, node_dim: int) -> FilterModule:
        if self.model is None:
            self.model = FilterModule(node_dim, self.config)
        return self.model

    def fit(self, train, val) -> dict:
        model = self._ensure_model(train[0].x.shape[1])
        before = [edge_efficiency_purity(e, pt_min=self.config.pt_min_eval) for e in val]
        make_trainer(self.config.epochs, self.progress).fit(model, datamodule=EventDataModule(train, val))
        model.to(self.device).eval()
        return {"val_before": before, "val_history": model.history}

    def save(self, path):
        from trkx.storage import atomic_path
        with atomic_path(path) as tmp:
            torch.save({"node_dim": (self.model.net.mlp[0].in_features - len(EDGE_FEATURES)) // 2, "state": self.model.state_dict()}, tmp)

    def load(self, path):
        blob = torch.load(path, map_location="cpu", weights_only=True)
        self._ensure_model(blob["node_dim"]).load_state_dict(blob["state"])
        self.model.to(self.device).eval()

    def infer(self, event: Data) -> Data:
        score = torch.sigmoid(self.model(event.to(self.device))).cpu()
        event = event.cpu()
        event.filter_score = score
        return select_edges(event, score >= self.config.cut, EDGE_FIELDS)
