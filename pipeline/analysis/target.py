"""What ``trkx analyze`` looks at: a trained learned stage of a pipeline (its plain network and its
training loss) and a few of the pipeline's validation events, as functions of the network's
flattened parameters."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch_geometric.data import Data

from trkx.analysis.params import FlatParameters
from trkx.errors import ConfigError
from trkx.event import edge_features
from trkx.losses import EdgeBCELoss, edge_training_targets
from trkx.storage import load_event


@dataclass
class AnalysisTarget:
    """One trained solution of a stage: ``module`` (a ``TrackingModule``: ``net`` and ``loss``),
    the events it is looked at on, and where its weights came from.  ``train_paths`` are the
    stage's training events (what a Bézier curve is fitted on, so that it is judged on others).
    ``edge_choice`` (event,
    scores) -> kept edges is the pipeline's track builder where it decides per edge (the
    assignment), so the figures also say what the chain keeps, as Kortus et al. report them."""
    pipe: object
    stage: object
    module: object
    events: list[Data]
    weights: Path
    edge_choice: Callable[[Data, torch.Tensor], torch.Tensor] | None = None
    train_paths: list[Path] = field(default_factory=list)
    space: FlatParameters = field(init=False)

    def __post_init__(self):
        self.module.eval()
        self.space = FlatParameters(self.module.net)

    @property
    def edge_classifier(self) -> bool:
        from trkx.training import EdgeClassifierModule
        return isinstance(self.module, EdgeClassifierModule)

    @staticmethod
    def inputs(event: Data) -> tuple:
        """The network's inputs from an event graph (as the training module builds them)."""
        return event.x, event.edge_index, edge_features(event, event.edge_index), event.region

    def outputs(self, theta: torch.Tensor, event: Data) -> torch.Tensor:
        """The network's output on ``event`` with parameters ``theta``."""
        return self.space.call(theta, *self.inputs(event))

    def event_loss(self, theta: torch.Tensor, event: Data) -> torch.Tensor:
        """The stage's training loss on one event (condensation: the sum of its terms)."""
        return self.loss_of(self.outputs(theta, event), event)

    def loss_of(self, out: torch.Tensor, event: Data) -> torch.Tensor:
        """The stage's training loss of the network's output ``out`` on ``event``."""
        if self.edge_classifier:
            return self.module.loss(out.float(), event)
        return sum(self.module.loss(out, event).values())

    def batch_losses(self, loss: Callable | None = None, events: list[Data] | None = None) -> list:
        """One closure ``theta -> loss`` per event of ``events`` (default: the analysis events,
        what the Hessian products average): the stage's training loss, or ``loss(output, event)``."""
        events = self.events if events is None else events
        if loss is None:
            return [lambda theta, e=e: self.event_loss(theta, e) for e in events]
        return [lambda theta, e=e: loss(self.outputs(theta, e).float(), e) for e in events]

    def training_events(self) -> list[Data]:
        """The stage's training events, read from the cache (the analysis events where none are listed)."""
        return [load_event(p) for p in self.train_paths] or self.events

    def bce_loss(self) -> EdgeBCELoss:
        """The stage's edge BCE: its loss where that is the BCE, else the BCE term it carries
        (the predict-and-track loss's), else a plain one."""
        own = self.module.loss
        return own if isinstance(own, EdgeBCELoss) else getattr(own, "bce", EdgeBCELoss())

    def evaluate(self, theta: torch.Tensor) -> dict[str, float]:
        """Mean loss over the events and, for an edge classifier, the Hamming loss (share of the
        weighted edges decided wrongly at score 0.5) and the true-positive rate of the target
        edges."""
        loss = 0.0
        counts = {"": torch.zeros(4), "assigned_": torch.zeros(4)}   # wrong, weighted, found, positives
        with torch.no_grad():
            for event in self.events:
                out = self.outputs(theta, event)
                loss += float(self.loss_of(out, event))
                if self.edge_classifier:
                    target, weight = edge_training_targets(event)
                    score = torch.sigmoid(out.float())
                    counts[""] += _edge_counts(score >= 0.5, target, weight)
                    if self.edge_choice is not None:
                        counts["assigned_"] += _edge_counts(self.edge_choice(event, score), target, weight)
        out = {"loss": loss / len(self.events)}
        if self.edge_classifier:
            for prefix in ("", "assigned_") if self.edge_choice is not None else ("",):
                wrong, weighted, found, positives = counts[prefix].tolist()
                out[f"{prefix}hamming"] = wrong / max(weighted, 1.0)
                out[f"{prefix}tpr"] = found / max(positives, 1.0)
        return out

    def decisions(self, theta: torch.Tensor) -> torch.Tensor:
        """Edge decisions at score 0.5 (edge classifier) or outputs, over all events, flattened."""
        with torch.no_grad():
            outs = [self.outputs(theta, e) for e in self.events]
        if self.edge_classifier:
            return torch.cat([torch.sigmoid(o.float()) >= 0.5 for o in outs])
        return torch.cat([o.reshape(-1) for o in outs])


def _edge_counts(keep: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(weighted wrong decisions, weight, target edges kept, target edges) of one event."""
    keep = keep.float()
    return torch.tensor([float(((keep != target).float() * weight).sum()), float(weight.sum()),
                         float((keep * target).sum()), float(target.sum())])


def track_builder_choice(pipe, stage) -> Callable | None:
    """``edge_choice`` of the first stage after ``stage`` that decides per edge
    (``decides_edges``), or None."""
    for later in pipe.stages[pipe.stages.index(stage) + 1:]:
        if getattr(later, "decides_edges", False):
            return later.edge_choice
    return None


def load_target(pipeline: str | Path, stage_yaml: str | Path, events: int = 2, seed: int | None = None) -> AnalysisTarget:
    """The stage of ``pipeline`` named by ``stage_yaml``, trained (or read from the cache) with
    its own seed or ``seed``, and ``events`` of its validation events (training events where the
    data has no validation split)."""
    from trkx.runner import Pipeline
    from trkx.training import LightningStage, MetricLearningModule

    pipe = Pipeline(pipeline, progress=False)
    stage = pipe.stage_for(stage_yaml)
    edge_choice = track_builder_choice(pipe, stage)
    if not isinstance(stage, LightningStage):
        raise ConfigError(f"{stage_yaml}: stage '{stage.name}' has no trained network to analyse")
    if seed is not None:
        stage = copy.copy(stage)
        stage.seed, stage.model = seed, None
    upstream = pipe.upstream_of(stage)
    weights = pipe.train_stage(stage, upstream)
    if isinstance(stage.model, MetricLearningModule):
        raise ConfigError(f"{stage_yaml}: stage '{stage.name}' is an embedding; trkx analyze works on edge "
                          f"classifiers and condensation stages")
    split = "val" if upstream.paths["val"] else "train"
    paths = upstream.paths[split][:events]
    if not paths:
        raise ConfigError(f"{pipe.path}: no validation or training events to analyse on")
    module = copy.deepcopy(stage.model).cpu().float()
    return AnalysisTarget(pipe, stage, module, [load_event(p) for p in paths], weights, edge_choice,
                          list(upstream.paths["train"]) if split == "val" else [])
