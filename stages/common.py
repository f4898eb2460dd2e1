"""Pieces shared by the learned stages: MLPs, edge features, edge selection, Lightning loops."""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

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
DZ_SCALE = 100.0   # mm: the Δz feature is Δz / DZ_SCALE


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
    return torch.stack([dr / 100.0, dphi * 10.0, dz / DZ_SCALE, (eta[dst] - eta[src]) * 10.0, phi_slope, z0], dim=-1)


def track_edge_truth(event: Data, edge_index: torch.Tensor | None = None) -> torch.Tensor:
    """Per edge: is it a consecutive truth track edge (either direction)?"""
    n = event.num_nodes
    ei = event.edge_index if edge_index is None else edge_index
    tt = event.track_edges
    keys = torch.cat([tt[0] * n + tt[1], tt[1] * n + tt[0]])
    return torch.isin(ei[0] * n + ei[1], keys)


def edge_training_targets(event: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, loss weight) per edge: consecutive truth edges are positive, other pairs of one
    particle (skipping hits) carry no weight, everything else is negative.  In a sector sample only
    the sector's own (core) edges carry weight; the overlap is context for message passing."""
    target = track_edge_truth(event)
    same = edge_truth(event, event.edge_index)
    weight = torch.where(same & ~target, 0.0, 1.0)
    if "core_edge" in event:
        weight = weight * event.core_edge
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
TRAINING_EDGE_FIELDS = EDGE_FIELDS + ("core_edge",)   # per-edge fields, with the sector samples' mask


def edge_efficiency_purity(event: Data, keep: torch.Tensor | None = None, pt_min: float = 1.0) -> dict:
    """Truth-graph efficiency (track edges of pT > pt_min particles found, either direction) and
    purity (kept edges joining hits of one particle) of ``event.edge_index[:, keep]``; a summary of
    ``trkx.metrics.edges.edge_counts`` for training logs."""
    from trkx.metrics.edges import edge_counts

    c = edge_counts(event, keep, pt_min, min_hits=0)
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {"efficiency": ratio(c["target_found"], c["target_truth"]), "purity": ratio(c["same_kept"], c["kept"]),
            "edges": c["kept"], "truth_edges": c["target_truth"], "found_truth_edges": c["target_found"]}


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


def hit_eta(event: Data) -> torch.Tensor:
    return torch.asinh(event.z / event.r.clamp_min(1e-6))


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
    keep_edges = nodes[event.edge_index[0]] & nodes[event.edge_index[1]] if "edge_index" in event else None
    for key, value in event.items():
        if key in ("edge_index", "track_edges"):
            keep = nodes[value[0]] & nodes[value[1]]
            sub[key] = new_id[value[:, keep]]
        elif key in TRAINING_EDGE_FIELDS:
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
            sub = select_edges(sub, pick, TRAINING_EDGE_FIELDS)
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


class EventDataModule(pl.LightningDataModule):
    """One event (or one sector sample of an event) per batch; events are loaded lazily and kept."""

    def __init__(self, train, val, sampling: SamplingConfig | None = None, seed: int = 0):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.sampling, self.seed = sampling, seed

    def _loader(self, events, shuffle: bool):
        return torch.utils.data.DataLoader(_Cached(events), batch_size=None, shuffle=shuffle, num_workers=0)

    def train_dataloader(self):
        if self.sampling is not None:
            samples = SectorSamples(self.train_set, self.sampling, self.seed)
            return torch.utils.data.DataLoader(samples, batch_size=None, shuffle=True, num_workers=0)
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return self._loader(self.val_set, False)


class _Cached(torch.utils.data.Dataset):
    """Events loaded on first use and kept in memory."""

    def __init__(self, events):
        self.events, self.cache = events, {}

    def __len__(self):
        return len(self.events)

    def __getitem__(self, i):
        if i not in self.cache:
            self.cache[i] = self.events[i]
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
        sampling = getattr(self.config, "sampling", None)
        trainer.fit(model, datamodule=EventDataModule(train, val, sampling=sampling, seed=self.seed))
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
