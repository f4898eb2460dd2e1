"""Pieces shared by the learned stages: MLPs, edge features, edge selection, Lightning loops."""
from __future__ import annotations

import logging
import math
import warnings
from typing import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch_geometric.data import Data

from trkx.event import edge_truth
from trkx.stage import TrainableStage


def make_mlp(in_dim: int, hidden: int, out_dim: int, layers: int, activation: str = "silu",
             layernorm: bool = True, out_activation: bool = False) -> nn.Sequential:
    """``layers`` linear layers (``layers - 1`` hidden), with optional LayerNorm after each hidden one."""
    act = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[activation]
    mods: list[nn.Module] = []
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        last = i == len(dims) - 2
        if not last or out_activation:
            if layernorm:
                mods.append(nn.LayerNorm(b))
            mods.append(act())
    return nn.Sequential(*mods)


EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "phi_slope", "z0")


def edge_features(event: Data, edge_index: torch.Tensor) -> torch.Tensor:
    """(E, 6) geometric edge features, each scaled to order one for true edges:
    Δr, Δφ (wrapped to [-π, π]), Δz, Δη, the φ slope Δφ/Δr (∝ 1/pT) and z0, the beam-line
    intercept of the straight line through both hits (near the luminous region for true edges)."""
    src, dst = edge_index
    r, phi, z = event.r, event.phi, event.z
    eta = torch.asinh(z / r.clamp_min(1e-6))
    dr = r[dst] - r[src]
    dz = z[dst] - z[src]
    dphi = torch.remainder(phi[dst] - phi[src] + math.pi, 2 * math.pi) - math.pi
    safe_dr = torch.where(dr.abs() < 1.0, torch.where(dr < 0, -1.0, 1.0), dr)   # mm
    phi_slope = (dphi / safe_dr * 1000.0).clamp(-10.0, 10.0)                     # rad per metre
    z0 = ((z[src] - r[src] * dz / safe_dr) / 1000.0).clamp(-5.0, 5.0)             # metres
    return torch.stack([dr / 100.0, dphi * 10.0, dz / 100.0, (eta[dst] - eta[src]) * 10.0, phi_slope, z0], dim=-1)


def track_edge_truth(event: Data, edge_index: torch.Tensor | None = None) -> torch.Tensor:
    """Per edge: is it a consecutive truth track edge (either direction)?"""
    n = event.num_nodes
    ei = event.edge_index if edge_index is None else edge_index
    tt = event.track_edges
    keys = torch.cat([tt[0] * n + tt[1], tt[1] * n + tt[0]])
    return torch.isin(ei[0] * n + ei[1], keys)


def edge_training_targets(event: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, loss weight) per edge: consecutive truth edges are positive, other pairs of one
    particle (skipping hits) carry no weight, everything else is negative."""
    target = track_edge_truth(event)
    same = edge_truth(event, event.edge_index)
    weight = torch.where(same & ~target, 0.0, 1.0)
    return target.float(), weight


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, pos_weight: float) -> torch.Tensor:
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, weight=weight, reduction="sum",
        pos_weight=torch.tensor(pos_weight, device=logits.device))
    return loss / weight.sum().clamp_min(1.0)


def select_edges(event: Data, keep: torch.Tensor, fields: tuple[str, ...]) -> Data:
    """Keep the edges where ``keep`` is True, in ``edge_index`` and every per-edge field named."""
    event.edge_index = event.edge_index[:, keep]
    for f in fields:
        if f in event:
            event[f] = event[f][keep]
    return event


EDGE_FIELDS = ("y", "filter_score", "gnn_score")


def target_edge_mask(event: Data, edge_index: torch.Tensor, pt_min: float) -> torch.Tensor:
    """Edges between hits of one particle above ``pt_min`` (the signal the targets talk about)."""
    return edge_truth(event, edge_index) & (event.pt[edge_index[0]] >= pt_min)


def edge_efficiency_purity(event: Data, keep: torch.Tensor | None = None, pt_min: float = 1.0) -> dict:
    """Truth-graph efficiency (track edges of pT > pt_min particles found, either direction) and
    purity (kept edges joining hits of one particle) of ``event.edge_index[:, keep]``; a summary of
    ``trkx.metrics.edges.edge_counts`` for training logs."""
    from trkx.metrics.edges import edge_counts

    c = edge_counts(event, keep, pt_min, min_hits=0)
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {"efficiency": ratio(c["target_found"], c["target_truth"]), "purity": ratio(c["same_kept"], c["kept"]),
            "edges": c["kept"], "truth_edges": c["target_truth"], "found_truth_edges": c["target_found"]}


class EventDataModule(pl.LightningDataModule):
    """One event per batch; events are loaded lazily and transformed once by ``prepare``."""

    def __init__(self, train, val, prepare: Callable[[Data], Data] | None = None):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.prepare = prepare or (lambda e: e)

    def _loader(self, events, shuffle: bool):
        return torch.utils.data.DataLoader(_Mapped(events, self.prepare), batch_size=None, shuffle=shuffle,
                                           num_workers=0)

    def train_dataloader(self):
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return self._loader(self.val_set, False)


class _Mapped(torch.utils.data.Dataset):
    def __init__(self, events, fn):
        self.events, self.fn, self.cache = events, fn, {}

    def __len__(self):
        return len(self.events)

    def __getitem__(self, i):
        if i not in self.cache:
            self.cache[i] = self.fn(self.events[i])
        return self.cache[i]


def make_trainer(epochs: int, progress: bool = True, precision: str = "32", **kwargs) -> pl.Trainer:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    accel = "gpu" if torch.cuda.is_available() else "cpu"
    if accel == "cpu" and precision == "16-mixed":
        precision = "bf16-mixed"  # fp16 autocast needs CUDA; bf16 is the CPU mixed precision
    return pl.Trainer(max_epochs=epochs, accelerator=accel, devices=1, precision=precision, logger=False,
                      enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                      num_sanity_val_steps=0, deterministic=False, **kwargs)


class TrackingModule(pl.LightningModule):
    """Lightning module base of the learned stages: AdamW with a cosine schedule from the stage
    config (``lr``, ``weight_decay``, ``epochs``) and per-epoch validation efficiency / purity."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.history: list[dict] = []
        self._val: list[dict] = []

    def record_validation(self, metrics: dict) -> None:
        self.log_dict({"val_efficiency": metrics["efficiency"], "val_purity": metrics["purity"]},
                      batch_size=1, prog_bar=True)
        self._val.append(metrics)

    def on_validation_epoch_start(self):
        self._val = []

    def on_validation_epoch_end(self):
        if self._val:
            self.history.append({"epoch": int(self.current_epoch),
                                 "efficiency": sum(m["efficiency"] for m in self._val) / len(self._val),
                                 "purity": sum(m["purity"] for m in self._val) / len(self._val)})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.cfg.epochs, 1))]


class ModelStage(TrainableStage):
    """A stage whose model is ``Module(in_dim, config)`` (in_dim: node features), trained by
    Lightning on one event per step; weights are saved with ``in_dim``."""
    Module: type[TrackingModule]
    weights_format = 2

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.model: TrackingModule | None = None
        self.in_dim: int | None = None

    def _ensure_model(self, in_dim: int) -> TrackingModule:
        if self.model is None:
            self.in_dim = in_dim
            self.model = self.Module(in_dim, self.config)
        return self.model

    def fit_report(self, val) -> dict:
        """Extra figures computed before training (for train.json)."""
        return {}

    def fit(self, train, val) -> dict:
        model = self._ensure_model(train[0].x.shape[1])
        report = self.fit_report(val)
        trainer = make_trainer(self.config.epochs, self.progress, precision=getattr(self.config, "precision", "32"))
        trainer.fit(model, datamodule=EventDataModule(train, val))
        model.to(self.device).eval()
        return {**report, "val_history": model.history}

    def save(self, path):
        from trkx.storage import atomic_path
        with atomic_path(path) as tmp:
            torch.save({"in_dim": self.in_dim, "state": self.model.state_dict()}, tmp)

    def load(self, path):
        blob = torch.load(path, map_location="cpu", weights_only=True)
        self._ensure_model(blob["in_dim"]).load_state_dict(blob["state"])
        self.model.to(self.device).eval()
