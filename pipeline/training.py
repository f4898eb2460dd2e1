"""Training: Lightning modules that take a plain model (``trkx.models``) and a loss
(``trkx.losses``), the event data module, the trainer, and ``LightningStage``, the base of the
stages whose state is such a module."""
from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import logging
import random
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch_geometric.data import Data

from trkx.compression import (CompressionConfig, PruningCallback, add_weight_fake_quant, native_bfloat16,
                              quantized_network, remove_weight_fake_quant, resolve_quantize, sparsity)
from trkx.config import ConfigError, config_to_dict
from trkx.event import edge_features, select_edges
from trkx.metrics.edges import edge_efficiency_purity
from trkx.sampling import SamplingConfig, SectorSamples
from trkx.stage import TrainableStage
from trkx.storage import atomic_path, first_line, safe_load
from trkx.tracking import log_config, log_outcome, tracking_logger


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a training: which stage, the epoch it reached and the checkpoint to resume from."""

    def __init__(self, stage: str, epoch: int, epochs: int, checkpoint: Path | None):
        super().__init__(stage, epoch, epochs, checkpoint)
        self.stage, self.epoch, self.epochs, self.checkpoint = stage, epoch, epochs, checkpoint

    def __str__(self) -> str:
        where = f"interrupted while training '{self.stage}' (epoch {self.epoch + 1} of {self.epochs})"
        if self.checkpoint is None:
            return f"{where}; no checkpoint yet, the next run trains from the start"
        return f"{where}; the same command (or `trkx run`) resumes from its last checkpoint, {self.checkpoint}"


class EventDataModule(pl.LightningDataModule):
    """One event (or one sector sample of an event) per batch; events are loaded lazily and kept."""

    def __init__(self, train, val, sampling: SamplingConfig | None = None, seed: int = 0):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.sampling, self.seed = sampling, seed
        self.order = ResumableShuffle(0)
        self.resume: tuple[int, int] | None = None   # (order seed, batches done) of an epoch cut short

    def train_dataloader(self):
        samples = SectorSamples(self.train_set, self.sampling, self.seed) if self.sampling is not None \
            else _Cached(self.train_set)
        self.order = ResumableShuffle(len(samples), self.resume)
        self.resume = None
        return torch.utils.data.DataLoader(samples, batch_size=None, num_workers=0, sampler=self.order)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(_Cached(self.val_set), batch_size=None, shuffle=False, num_workers=0)


class ResumableShuffle(torch.utils.data.Sampler):
    """``RandomSampler``'s order, drawn the same way (a seed from the global RNG at the epoch's first
    item), that remembers its seed: a training resumed within an epoch (``resume``: the order seed
    and the batches already done) draws nothing and goes on with the rest of the same order."""

    def __init__(self, n: int, resume: tuple[int, int] | None = None):
        self.n, self.resume = n, resume
        self.seed: int | None = None

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self.resume is not None:
            (self.seed, skip), self.resume = self.resume, None
        else:
            self.seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        yield from torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()[skip:]


def rng_state() -> dict:
    """Every global random state training draws from (torch, CUDA, numpy, Python), as plain tensors,
    numbers and tuples, so that a checkpoint holding it loads with ``weights_only``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(obj):
    """Python's random state is nested tuples; a checkpoint may give them back as lists."""
    return tuple(_as_tuples(v) for v in obj) if isinstance(obj, (list, tuple)) else obj


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


@dataclass
class TrainerConfig:
    """A learned stage's ``trainer:`` section, handed to Lightning's ``Trainer``.  With ``devices: 2,
    strategy: ddp`` Lightning re-runs the command for the second rank (``ddp_spawn`` / ``ddp_fork``
    start it from this process; under torchrun or SLURM the launcher starts every rank); each rank
    trains on its share of the events (Lightning's distributed sampler), gloo on CPU, NCCL on GPUs.
    ``max_epochs`` / ``precision`` override the stage's ``epochs`` / ``precision``."""
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"                  # auto | ddp | ddp_spawn | ddp_fork | deepspeed | ...
    precision: str | None = None
    accumulate_grad_batches: int = 1
    max_epochs: int | None = None
    gradient_clip_val: float = 0.0
    checkpoint_every_n_steps: int = 0       # 0: a checkpoint at the end of each epoch only
    # train on one CPU thread: bit-reproducible across processes (some multithreaded CPU kernels
    # are not, the influencer's backward among them); slower where the step is compute-bound
    deterministic: bool = False
    # experiment tracking beside the CSV logs (``trkx.tracking``); where logs go, not what is trained
    logger: Literal["csv", "tensorboard", "mlflow", "wandb"] = "csv"
    tracking_uri: str | None = None         # mlflow: the store (default: SQLite in <workdir>/mlruns)
    experiment: str = "trkx"                # mlflow experiment / W&B project

    log_only: ClassVar[tuple[str, ...]] = ("logger", "tracking_uri", "experiment")   # not in the fingerprint

    def validate(self) -> None:
        if self.devices < 1 or self.num_nodes < 1 or self.accumulate_grad_batches < 1:
            raise ValueError("trainer: devices, num_nodes and accumulate_grad_batches must be >= 1")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError("trainer: max_epochs must be >= 1")
        if self.gradient_clip_val < 0 or self.checkpoint_every_n_steps < 0:
            raise ValueError("trainer: gradient_clip_val and checkpoint_every_n_steps must be >= 0")


def trainer_field():
    """The ``trainer:`` field of a learned stage's config (out of the fingerprint while default)."""
    return field(default_factory=TrainerConfig, metadata={"omit_default": True})


@dataclass
class TrainingConfig:
    """The training keys every learned stage's config shares (flat in its YAML, beside the
    network's keys): epochs, AdamW's learning rate and weight decay, the training precision, the pT
    of the edges whose validation efficiency is logged, and Lightning's ``trainer:`` section.  A
    stage's config redeclares a key to give it another default."""
    epochs: int = 20
    lr: float = 2e-3
    weight_decay: float = 1e-5
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    pt_min_eval: float = 1.0
    trainer: TrainerConfig = trainer_field()   # Lightning: devices, strategy (DDP), ...
    # pruning and quantisation-aware training (``trkx.compression``)
    compression: CompressionConfig = field(default_factory=CompressionConfig, metadata={"omit_default": True})
    # inference through a narrower copy of the trained network (not in the training fingerprint):
    # int8, torch's dynamically quantised linear layers (CPU); bf16, weights and activations in bfloat16;
    # auto, bf16 where the device multiplies bf16 fast and fp32 elsewhere (``trkx.compression.resolve_quantize``)
    quantize: Literal["none", "int8", "bf16", "auto"] = field(default="none", metadata={"omit_default": True})

    inference_only: ClassVar[tuple[str, ...]] = ("quantize",)


@dataclass
class SampledTrainingConfig(TrainingConfig):
    """``TrainingConfig`` for stages that train on (eta, phi) sector samples of whole events."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


def make_trainer(epochs: int, progress: bool = True, precision: str = "32", trainer: TrainerConfig | None = None,
                 log_dir: Path | None = None, checkpoint_dir: Path | None = None,
                 monitor: tuple[str, str] | None = None, callbacks: list | None = None,
                 tracker=None, **kwargs) -> pl.Trainer:
    """A Lightning trainer for ``epochs`` (or ``trainer.max_epochs``) with the ``trainer`` section's
    devices and strategy; CSV (and TensorBoard, when installed) logs in ``log_dir``, and
    ``tracker`` (an MLflow or W&B logger, ``trkx.tracking``) beside them; checkpoints
    (``last.ckpt`` and the best by ``monitor`` = (metric, "min" | "max")) in ``checkpoint_dir``;
    ``callbacks``: more Lightning callbacks (a tuner's pruning)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # TrackingModule resumes mid-epoch itself (it saves the epoch's order and batches done)
    warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
    t = trainer or TrainerConfig()
    accel = t.accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    precision = t.precision or precision
    if accel == "cpu" and precision == "16-mixed":
        precision = "bf16-mixed"  # fp16 autocast needs CUDA; bf16 is the CPU mixed precision
    loggers, callbacks = [], list(callbacks or [])
    if log_dir is not None:
        from pytorch_lightning.callbacks import LearningRateMonitor
        from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
        loggers.append(CSVLogger(str(log_dir), name="csv"))
        if importlib.util.find_spec("tensorboard") is not None:     # optional: pip install tensorboard
            loggers.append(TensorBoardLogger(str(log_dir), name="tensorboard"))
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if tracker is not None:
        loggers.append(tracker)
    if checkpoint_dir is not None:
        from pytorch_lightning.callbacks import ModelCheckpoint
        metric, mode = monitor or ("val_loss", "min")
        # "last": the newest state (each epoch end, or every n steps), overwritten in place
        callbacks += [ModelCheckpoint(dirpath=str(checkpoint_dir), filename="best", monitor=metric, mode=mode,
                                      enable_version_counter=False),
                      ModelCheckpoint(dirpath=str(checkpoint_dir), filename="last", monitor=None, save_top_k=1,
                                      enable_version_counter=False,
                                      every_n_train_steps=t.checkpoint_every_n_steps or None)]
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    try:
        return pl.Trainer(max_epochs=t.max_epochs or epochs, accelerator=accel, devices=t.devices,
                          num_nodes=t.num_nodes, strategy=t.strategy, precision=precision,
                          accumulate_grad_batches=t.accumulate_grad_batches,
                          gradient_clip_val=t.gradient_clip_val or None, logger=loggers or False, callbacks=callbacks,
                          enable_checkpointing=checkpoint_dir is not None, enable_progress_bar=progress,
                          enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
                          log_every_n_steps=1, **kwargs)
    except (MisconfigurationException, ValueError) as err:   # unknown strategy, no such device, ...
        raise ConfigError(f"trainer: {err}") from None


def epoch_losses(log_dir: Path) -> dict[int, float]:
    """Training loss per epoch from the newest CSV log ``make_trainer`` wrote under ``log_dir``."""
    newest = max((Path(log_dir) / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    with open(newest / "metrics.csv") as f:
        return {int(r["epoch"]): float(r["train_loss_epoch"]) for r in csv.DictReader(f) if r.get("train_loss_epoch")}


class TrackingModule(pl.LightningModule):
    """Lightning module base: ``net`` (the plain model) trained with ``loss``; AdamW with a cosine
    schedule from the stage config (``lr``, ``weight_decay``, ``epochs``) and per-epoch
    validation efficiency / purity."""

    def __init__(self, net: nn.Module, loss: nn.Module, cfg):
        super().__init__()
        self.net, self.loss, self.cfg = net, loss, cfg
        self.history: list[dict] = []
        self._val: list[dict] = []

    logged = ("efficiency", "purity", "f1", "loss")
    monitor: ClassVar[tuple[str, str]] = ("val_f1", "max")   # what the best checkpoint is chosen by

    def record_validation(self, metrics: dict) -> None:
        """Log one validation event's figures (efficiency, purity and their harmonic mean f1 for
        edge tasks, loss terms for condensation); their means per epoch go to ``history``."""
        if "efficiency" in metrics and "purity" in metrics:
            e, p = float(metrics["efficiency"]), float(metrics["purity"])
            metrics = {**metrics, "f1": 2 * e * p / (e + p) if e + p > 0 else 0.0}
        self.log_dict({f"val_{k}": float(v) for k, v in metrics.items() if k in self.logged}, batch_size=1,
                      prog_bar=True, sync_dist=True)
        self._val.append(metrics)

    def log_train_loss(self, loss: torch.Tensor) -> None:
        self.log("train_loss", loss, batch_size=1, on_step=True, on_epoch=True, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """A resumed training keeps its earlier epochs' history and goes on exactly: the random
        states and, within an epoch, the epoch's order and the batches done."""
        checkpoint["trkx_history"] = self.history
        checkpoint["trkx_rng"] = rng_state()
        done = int(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        order = getattr(self.trainer.datamodule, "order", None)
        if 0 < done < self.trainer.num_training_batches and order is not None and order.seed is not None:
            checkpoint["trkx_epoch"] = {"order_seed": order.seed, "batches_done": done}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("trkx_history", []))
        cut = checkpoint.get("trkx_epoch")
        if cut is not None and hasattr(self.trainer.datamodule, "resume"):
            # within an epoch: the rest of its order, and the random states at its next batch (set
            # then, as making the data iterator draws from the global RNG)
            self.trainer.datamodule.resume = (cut["order_seed"], cut["batches_done"])
            self._rng_at_next_batch = checkpoint.get("trkx_rng")
        elif "trkx_rng" in checkpoint:
            set_rng_state(checkpoint["trkx_rng"])   # at an epoch's end: before the next epoch's draws

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        pending = getattr(self, "_rng_at_next_batch", None)
        if pending is not None:
            set_rng_state(pending)
            self._rng_at_next_batch = None

    def on_validation_epoch_start(self):
        self._val = []

    def on_validation_epoch_end(self):
        if self._val:
            self.history.append({"epoch": int(self.current_epoch),
                                 **{k: sum(float(m[k]) for m in self._val) / len(self._val) for k in self._val[0]}})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        epochs = self.trainer.max_epochs if self._trainer is not None else self.cfg.epochs
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))]




class EdgeClassifierModule(TrackingModule):
    """Trains ``net(x, edge_index, edge_features, region) -> logit per edge`` with
    ``loss(logits, event)``; ``train_edges`` > 0 trains on that many random edges per step;
    validation counts edges with sigmoid(logit) >= ``val_cut`` as kept."""

    def __init__(self, net: nn.Module, loss: nn.Module, cfg, val_cut: float = 0.5, train_edges: int = 0):
        super().__init__(net, loss, cfg)
        self.val_cut, self.train_edges = val_cut, train_edges

    def forward(self, event: Data) -> torch.Tensor:
        return self.net(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)

    def training_step(self, event: Data, batch_idx: int):
        n_edges = event.edge_index.shape[1]
        if 0 < self.train_edges < n_edges:
            pick = torch.randperm(n_edges, device=event.x.device)[: self.train_edges]
            event = select_edges(event.clone(), pick)
        logits = self(event).float()
        if event.edge_index.shape[1] == 0:
            return None
        loss = self.loss(logits, event)
        self.log_train_loss(loss)
        return loss

    def validation_step(self, event: Data, batch_idx: int):
        keep = torch.sigmoid(self(event).float()) >= self.val_cut
        self.record_validation(edge_efficiency_purity(event, keep, self.cfg.pt_min_eval))


class MetricLearningModule(TrackingModule):
    """Trains ``net(x) -> embedding`` with ``loss(embedding, pairs, event)`` on the truth track
    edges, ``knn_train`` hard negatives per hit (neighbours within ``margin`` in the current
    embedding) and ``randomisation`` random pairs per hit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_pairs(self, event: Data, emb: torch.Tensor) -> torch.Tensor:
        from trkx.ops.frnn import build_edges
        n = event.num_nodes
        hard = build_edges(emb.detach(), self.cfg.margin, self.cfg.knn_train, backend="auto")
        rand = torch.randint(0, n, (2, n * self.cfg.randomisation), device=emb.device)
        return torch.cat([event.track_edges, hard, rand], dim=1)

    def training_step(self, event: Data, batch_idx: int):
        emb = self(event.x)
        loss = self.loss(emb, self.training_pairs(event, emb), event)
        self.log_train_loss(loss)
        return loss

    def validation_step(self, event: Data, batch_idx: int):
        from trkx.ops.frnn import build_edges
        emb = self(event.x)
        event = event.clone()
        event.edge_index = build_edges(emb, self.cfg.margin, None, backend="auto")
        self.record_validation(edge_efficiency_purity(event, pt_min=self.cfg.pt_min_eval))


class CondensationModule(TrackingModule):
    """Trains a per-hit network ``net(x, edge_index, edge_features, region)`` with
    ``loss(output, event)``, a dict of named terms that are summed; validation records each term."""
    monitor = ("val_loss", "min")

    def forward(self, event: Data) -> torch.Tensor:
        return self.net(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)

    def training_step(self, event: Data, batch_idx: int):
        parts = self.loss(self(event), event)
        loss = sum(parts.values())
        self.log_train_loss(loss)
        return loss

    def validation_step(self, event: Data, batch_idx: int):
        parts = {k: float(v) for k, v in self.loss(self(event), event).items()}
        self.record_validation({"loss": sum(parts.values()), **parts})


def autocast_context(precision: str, device: torch.device):
    """Mixed-precision inference context; fp16 needs CUDA, so on CPU both mixed modes use bf16."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if (precision == "16-mixed" and device.type == "cuda") else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@functools.cache
def _warn_once(message: str) -> None:
    """``message`` on stderr, once per process."""
    print(message, file=sys.stderr)


class LightningStage(TrainableStage):
    """A stage whose state is the Lightning module ``build(in_dim)`` returns (in_dim: node
    features), trained on one event (or sector sample) per step; weights are saved with ``in_dim``."""
    weights_format: ClassVar[int] = 2

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.model: TrackingModule | None = None
        self.in_dim: int | None = None
        self.exported = False   # inference through an exported (TorchScript) network
        # set by the runner before ``fit``: Lightning logs, checkpoints, resume from last.ckpt
        self.log_dir: Path | None = None
        self.checkpoint_dir: Path | None = None
        self.resume = False
        self.callbacks: list = []   # extra Lightning callbacks for ``fit``
        self.tracking_dir: Path | None = None   # the workdir, where MLflow / W&B runs are kept
        self.run_name: str | None = None        # the tracked run's name (default: the stage's)
        self.tracker = None         # the MLflow / W&B logger of the last ``fit`` (closed by ``finish_tracking``)

    def build(self, in_dim: int) -> TrackingModule:
        """The Lightning module (its plain network and loss) for ``in_dim`` node features."""
        raise NotImplementedError

    def _ensure_model(self, in_dim: int) -> TrackingModule:
        if self.model is None:
            try:
                self.model = self.build(in_dim)
            except (RuntimeError, MemoryError, OverflowError) as err:   # hidden: 10**12, say
                raise ConfigError(f"{self.source or self.name}: cannot build the network of stage '{self.name}' "
                                  f"({type(err).__name__}: {first_line(err)}); check its sizes") from None
            self.in_dim = in_dim
        return self.model

    def example_inputs(self, event: Data) -> tuple[torch.Tensor, ...]:
        """The network's inputs for ``event`` (what ``infer`` passes it), for export by tracing:
        an edge classifier's ``(x, edge_index, edge features, region)``."""
        return (event.x, event.edge_index, edge_features(event, event.edge_index), event.region)

    def export(self, event: Data) -> torch.jit.ScriptModule:
        """The network traced to TorchScript on ``event``'s inputs (shapes stay dynamic)."""
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")      # TracerWarnings: no shape-dependent Python branches here
            return torch.jit.trace(self.model.net.eval(), self.example_inputs(event), check_trace=False)

    def use_network(self, net: nn.Module) -> None:
        """Run inference with ``net`` (an exported TorchScript copy of the network) instead."""
        self.model.net = net
        self.exported = True

    def fit_report(self, val) -> dict:
        """Extra figures computed before training (for train.json)."""
        return {}

    def input_dim(self, train) -> int:
        """The network's input width, from the training events (their node features)."""
        return train[0].x.shape[1]

    def fit(self, train, val) -> dict:
        model = self._ensure_model(self.input_dim(train))
        report = self.fit_report(val)
        try:
            pruning = [PruningCallback(self.config.compression.pruning)] if self.config.compression.pruning.amount else []
            self.tracker = tracking_logger(self.config.trainer, self.tracking_dir, self.run_name or self.name) \
                if self.tracking_dir is not None else None
            trainer = make_trainer(self.config.epochs, self.progress, precision=self.config.precision,
                                   trainer=self.config.trainer, log_dir=self.log_dir, checkpoint_dir=self.checkpoint_dir,
                                   monitor=model.monitor, callbacks=self.callbacks + pruning, tracker=self.tracker)
        except ConfigError as err:
            raise ConfigError(f"{self.source or self.name}: {err}") from None
        if self.tracker is not None and trainer.is_global_zero:
            log_config(self.tracker, self.config)
        compression = self.config.compression
        if compression.qat_bits:
            add_weight_fake_quant(model.net, compression.qat_bits)
        sampling = getattr(self.config, "sampling", None)
        last = self.checkpoint_dir / "last.ckpt" if self.checkpoint_dir is not None else None
        resume = last if (self.resume and last is not None and last.is_file()) else None
        threads = torch.get_num_threads()
        if self.config.trainer.deterministic:
            torch.set_num_threads(1)
        try:
            # weights_only: a checkpoint from the cache cannot run code (the caller checked it with safe_load)
            trainer.fit(model, datamodule=EventDataModule(train, val, sampling=sampling, seed=self.seed),
                        ckpt_path=resume, weights_only=True)
        except SystemExit:
            if not trainer.interrupted:
                raise
        finally:
            torch.set_num_threads(threads)
        if trainer.interrupted:       # Lightning turns Ctrl-C into a graceful stop (and exit(1))
            raise TrainingInterrupted(self.name, int(trainer.current_epoch), trainer.max_epochs,
                                      last if last is not None and last.is_file() else None)
        if not trainer.is_global_zero:
            raise SystemExit(0)     # a DDP rank Lightning started by re-running the command: rank 0 goes on
        if last is not None and last.is_file() and not model.history:
            # the ranks of a spawned DDP run return their weights, not the module's attributes
            model.history = safe_load(last, "checkpoint").get("trkx_history", [])
        remove_weight_fake_quant(model.net)     # the rounded weights, as plain parameters
        model.to(self.device).eval()
        compressed = {"compression": sparsity(model.net)} if compression.active else {}
        self._prepare_inference()
        return {**report, **compressed, "world_size": trainer.world_size,
                "resumed_from": str(resume) if resume else None, "val_history": model.history}

    def finish_tracking(self, files: list[Path], provenance: dict) -> None:
        """After the runner saved them: the weights and train.json as the tracked run's artefacts."""
        if self.tracker is not None:
            log_outcome(self.tracker, self.name, files, provenance)
            self.tracker = None

    @property
    def numbers(self) -> str:
        """The inference numbers this stage runs on its device: ``quantize`` with ``auto`` resolved
        (``none``, ``int8`` or ``bf16``)."""
        return resolve_quantize(getattr(self.config, "quantize", "none"), self.device)

    def resolved_config(self) -> dict:
        """The config with ``quantize: auto`` replaced by the numbers it runs here (the scores
        depend on them)."""
        if getattr(self.config, "quantize", "none") != "auto":
            return super().resolved_config()
        return config_to_dict(replace(self.config, quantize=self.numbers))

    def _prepare_inference(self) -> None:
        """With ``quantize: int8`` or ``bf16`` (or ``auto`` resolved to bf16), inference runs a
        narrower copy of the trained network (the float one is kept for ``save``)."""
        self._float_net = None
        numbers = self.numbers
        if numbers != "none":
            if numbers == "int8" and self.device.type != "cpu":
                raise ConfigError(f"{self.source or self.name}: 'quantize: int8' runs on the CPU only "
                                  f"(device is {self.device.type})")
            if numbers == "bf16" and not native_bfloat16(self.device):
                why = " (no AVX-512 here)" if self.device.type == "cpu" else ""
                _warn_once(f"{self.source or self.name}: 'quantize: bf16' on a {self.device.type} without fast "
                           f"bfloat16 products{why}: emulated, several times slower than fp32; "
                           "'quantize: auto' runs fp32 on such machines")
            self._float_net = self.model.net
            self.model.net = quantized_network(self._float_net, numbers)

    def save(self, path):
        quantized, float_net = self.model.net, getattr(self, "_float_net", None)
        if float_net is not None:
            self.model.net = float_net
        try:
            state = self.model.state_dict()
        finally:
            self.model.net = quantized
        with atomic_path(path) as tmp:
            torch.save({"in_dim": self.in_dim, "state": state}, tmp)

    def load(self, path):
        blob = safe_load(path, "weights file")
        self._ensure_model(blob["in_dim"]).load_state_dict(blob["state"])
        self.model.to(self.device).eval()
        self._prepare_inference()
