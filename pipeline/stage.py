"""Stage interfaces and the registry that maps a YAML ``stage:`` name to its class."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import torch
from torch_geometric.data import Data

from trkx.config import ConfigError, config_to_dict, load_yaml, parse_config
from trkx.storage import load_event

STAGES: dict[str, type["Stage"]] = {}
STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
SPLITS = ("train", "val", "test")   # the event splits every stage's cache holds


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
    """A step of the chain: ``infer`` takes one event graph and returns it with its own fields added.

    Subclass one of the role classes below (``DataSource``, ``Embedder``, ``GraphConstructor``,
    ``EdgeClassifier``, ``TrackBuilder``); the role fixes where the stage may sit in a chain."""
    kind: ClassVar[str] = ""             # the YAML ``stage:`` name (set by ``register``)
    Config: ClassVar[type]
    trainable: ClassVar[bool] = False
    role: ClassVar[str] = ""
    edge_fields: ClassVar[tuple[str, ...]] = ()   # per-edge fields this stage adds (kept aligned by edge selection)
    weights_format: ClassVar[int] = 0

    def __init__(self, config: Any, name: str | None = None, device: str = "cpu", seed: int = 0,
                 source: str | Path | None = None):
        self.config = config
        self.name = name or self.kind
        self.device = torch.device(device)
        self.seed = seed
        self.source = Path(source) if source is not None else None   # the YAML it was read from
        self.progress = True   # progress bars while training; the runner sets it

    def resolved_config(self) -> dict:
        """The config as this stage runs it here, as a dict: its cache fingerprint and a bundle's
        copy of its YAML are made from it (a stage with a setting chosen by the machine, such as
        ``quantize: auto``, writes what it chose)."""
        return config_to_dict(self.config)

    def input_digest(self) -> dict | None:
        """What the stage reads besides its config, upstream events and weights (input files, say),
        as JSON for its cache fingerprint; None when nothing."""
        return None

    def requires(self) -> tuple[str, ...]:
        """Roles that must come earlier in the chain (checked when a pipeline loads)."""
        return ()

    def infer(self, event: Data) -> Data:
        raise NotImplementedError

    def edge_keep(self, event: Data) -> torch.Tensor | None:
        """Edges this stage's output counts as selected, for edge metrics (None: all of them)."""
        return None

    def bench_options(self) -> dict[str, list]:
        """Alternatives ``trkx bench`` times beside the configured stage: {config key: values}
        (at most one key); none by default."""
        return {}

    def extra_metrics(self, hits, eval_cfg) -> dict[str, dict]:
        """Figures this stage adds to ``metrics.json`` beside the track metrics, by key, from the
        per-hit table (event_id, hit_id, particle_id, pt, eta, weight, track_id); a figure's
        ``summary`` line is printed under the headline and in the report.  None by default."""
        return {}

    def cpp_lines(self) -> list[str]:
        """This stage's lines of the C++ tool's ``chain.txt`` (``key value ...``; a network it
        exports is at ``torchscript/<name>.pt`` in the bundle); raises NoCppPort saying why not."""
        raise NoCppPort(f"stage '{self.name}' ({self.kind}) has no C++ port")


class NoCppPort(Exception):
    """A stage (or a setting of it) that the C++ tool cannot run; the message says why."""


class DataSource(Stage):
    """Produces the event graphs (nodes, truth) of every split; first in every chain."""
    role = "data"
    workers = 1    # threads a source may use to make its events (the runner's --workers)

    def split_sizes(self) -> dict[str, int]:
        """Number of events per split."""
        raise NotImplementedError

    def events(self, workdir: Path, progress: bool = True) -> Iterator[tuple[str, int, Data]]:
        """Yield (split, event_id, event graph) for every event, in split order; ``workdir`` is
        the stage's cache entry, for raw files it makes."""
        raise NotImplementedError


class Embedder(Stage):
    """Adds per-hit latent coordinates that a graph constructor searches (metric learning)."""
    role = "embedding"


class GraphConstructor(Stage):
    """Adds ``edge_index`` (and its truth ``y``)."""
    role = "graph_construction"
    edge_fields = ("y",)


class EdgeClassifier(Stage):
    """Adds one score per edge, named by ``score_field``; may drop edges below a cut."""
    role = "edge_classification"
    score_field: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.score_field:
            cls.edge_fields = (cls.score_field,)

    def requires(self) -> tuple[str, ...]:
        return ("graph_construction",)

    def cpp_lines(self) -> list[str]:
        """A classifier whose network exports to TorchScript, with an edge ``cut``, runs in C++."""
        if not hasattr(self, "export") or not hasattr(self.config, "cut"):
            return super().cpp_lines()
        return [f"classifier {self.name} torchscript/{self.name}.pt cut {self.config.cut!r}"]


class TrackBuilder(Stage):
    """Adds ``track_id`` per hit; last in the chain.  One that builds tracks from edge scores
    reads ``score_field``: its config's, or else the last edge classifier's before it."""
    role = "track_building"
    needs_edge_scores: ClassVar[bool] = True   # False for one-shot stages that build tracks themselves

    def requires(self) -> tuple[str, ...]:
        return ("edge_classification",) if self.needs_edge_scores else ()

    def bind_score(self, classifier: EdgeClassifier) -> None:
        """Read ``classifier``'s score unless the config names a field."""
        if getattr(self.config, "score_field", "") is None:
            self.config.score_field = classifier.score_field


class TrainableStage(Stage):
    """A stage with a trained state: ``fit`` trains it, ``save``/``load`` hold it (weights, a
    module map, ...).  Combine with a role class: ``class MyStage(TrainableStage, GraphConstructor)``."""
    trainable: ClassVar[bool] = True
    weights_format: ClassVar[int] = 1   # bump when the saved-weights layout changes: old caches retrain
    # the directory of the trained state (set by the runner): what a stage derives from its
    # weights and keeps (an ahead-of-time compiled network) lies there
    weights_dir: Path | None = None

    def fit(self, train: EventSet, val: EventSet) -> dict:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Write the trained state to ``path``, atomically."""
        raise NotImplementedError

    def load(self, path: Path) -> None:
        """Read the state ``save`` wrote."""
        raise NotImplementedError


_EXTRA_EDGE_FIELDS: set[str] = set()


def declare_edge_field(name: str) -> None:
    """Declare a per-edge field that no stage adds (a training mask, say), so that edge selection
    keeps it aligned too."""
    _EXTRA_EDGE_FIELDS.add(name)


def edge_fields() -> tuple[str, ...]:
    """Every declared per-edge field: those of the registered stages and the extra ones."""
    fields = set(_EXTRA_EDGE_FIELDS).union(*(cls.edge_fields for cls in registered_stages().values()))
    return tuple(sorted(fields))


def registered_stages() -> dict[str, type[Stage]]:
    """Every registered stage class by its YAML name (the built-in ones discovered first)."""
    from trkx.stages import discover
    discover()
    return dict(STAGES)


def stage_class(kind: str, where: str) -> type[Stage]:
    stages = registered_stages()
    if kind not in stages:
        raise ConfigError(f"{where}: key 'stage': unknown stage {kind!r} (known: {', '.join(sorted(stages))})")
    return stages[kind]


def load_plugin(plugin, base: Path, where: str) -> None:
    """Import the stage file ``plugin`` names (once per process), registering its stages."""
    if not isinstance(plugin, str):
        raise ConfigError(f"{where}: key 'plugin': expected the path of a Python file, got {type(plugin).__name__}")
    file = (base / plugin).resolve()
    if not file.is_file() or file.suffix != ".py":
        raise ConfigError(f"{where}: key 'plugin': {file} is not a Python file")
    module = "trkx_plugin_" + re.sub(r"\W", "_", file.with_suffix("").as_posix())
    if module in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module, file)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded          # dataclasses and the code digest look the module up here
    try:
        spec.loader.exec_module(loaded)
    except Exception as err:
        del sys.modules[module]
        raise ConfigError(f"{where}: key 'plugin': {file} failed to import ({type(err).__name__}: {err})") from None


def load_stage(path: str | Path, device: str = "cpu", seed: int = 0, default_kind: str | None = None) -> Stage:
    """Build a stage from its YAML (``stage:`` kind, optional ``name:``, optional ``plugin:``, then
    the stage's own keys).  ``plugin: file.py`` (relative to the YAML) is a Python file outside trkx
    that registers the stage (``@register``): a new stage is that file and its YAML."""
    data = load_yaml(path)
    where = str(path)
    plugin = data.pop("plugin", None)
    if plugin is not None:
        load_plugin(plugin, Path(path).parent, where)
    kind = data.pop("stage", default_kind)
    if kind is None:
        raise ConfigError(f"{where}: missing required key 'stage'")
    name = data.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}: key 'name': expected str, got {type(name).__name__}")
    if name is not None and not STAGE_NAME.fullmatch(name):
        # the name is a directory of the cache: no separators, no '..', no hidden names
        raise ConfigError(f"{where}: key 'name': {name!r} is not a plain name (letters, digits, '_', '-', '.', "
                          f"not starting with '.')")
    cls = stage_class(kind, where)
    cfg = parse_config(cls.Config, data, where)
    return cls(cfg, name=name, device=device, seed=seed, source=path)
