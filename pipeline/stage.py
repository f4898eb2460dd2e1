"""Stage interfaces and the registry that maps a YAML ``stage:`` name to its class."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch_geometric.data import Data

from trkx.config import ConfigError, load_yaml, parse_config
from trkx.storage import load_event

STAGES: dict[str, type["Stage"]] = {}


def register(kind: str):
    """Class decorator: make a stage available as ``stage: <kind>`` in YAML."""
    def wrap(cls):
        cls.kind = kind
        STAGES[kind] = cls
        return cls
    return wrap


class EventSet(Sequence[Data]):
    """Lazily loaded events of one split (a list of ``event<ID>.pt`` paths)."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        return load_event(self.paths[i])


class Stage:
    """A step of the chain: ``infer`` takes one event graph and returns it with its own fields added."""
    kind: ClassVar[str] = ""
    Config: ClassVar[type]
    trainable: ClassVar[bool] = False
    score_field: ClassVar[str | None] = None   # per-edge score this stage adds, if any
    # what the stage does in the chain (the order is checked when a pipeline loads):
    # "embedding" (node features for a graph), "graph_construction" (adds edge_index),
    # "edge_classification" (scores edges), "track_building" (adds track_id; last)
    role: ClassVar[str] = ""
    weights_format: ClassVar[int] = 0

    def __init__(self, config: Any, name: str | None = None, device: str = "cpu", seed: int = 0):
        self.config = config
        self.name = name or self.kind
        self.device = torch.device(device)
        self.seed = seed
        self.progress = True   # progress bars while training; the runner sets it

    def infer(self, event: Data) -> Data:
        raise NotImplementedError

    def edge_keep(self, event: Data) -> torch.Tensor | None:
        """Edges this stage's output counts as selected, for edge metrics (None: all of them)."""
        return None


class TrainableStage(Stage):
    """A stage with a model: ``fit`` trains it (Lightning inside), ``save``/``load`` hold its weights."""
    trainable: ClassVar[bool] = True
    weights_format: ClassVar[int] = 1   # bump when the saved-weights layout changes: old caches retrain
    model: torch.nn.Module

    def fit(self, train: EventSet, val: EventSet) -> dict:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Write the trained state (weights, a module map, ...) to ``path``, atomically."""
        raise NotImplementedError

    def load(self, path: Path) -> None:
        """Read the state ``save`` wrote."""
        raise NotImplementedError


def stage_class(kind: str, where: str) -> type[Stage]:
    from trkx.stages import discover
    discover()
    if kind not in STAGES:
        raise ConfigError(f"{where}: key 'stage': unknown stage {kind!r} (known: {', '.join(sorted(STAGES))})")
    return STAGES[kind]


def load_stage(path: str | Path, device: str = "cpu", seed: int = 0) -> Stage:
    """Build a stage from its YAML (``stage:`` kind, optional ``name:``, then the stage's own keys)."""
    data = load_yaml(path)
    where = str(path)
    kind = data.pop("stage", None)
    if kind is None:
        raise ConfigError(f"{where}: missing required key 'stage'")
    name = data.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}: key 'name': expected str, got {type(name).__name__}")
    cls = stage_class(kind, where)
    cfg = parse_config(cls.Config, data, where)
    return cls(cfg, name=name, device=device, seed=seed)
