"""A trained chain loaded for inference, from a pipeline's cache or from a bundle."""
from __future__ import annotations

from dataclasses import dataclass, field

from trkx.stage import DataSource, Stage


@dataclass
class Chain:
    """A trained chain: the data source (features, regions, transforms) and the stages, loaded."""
    source: DataSource
    stages: list[Stage]
    origin: str                                  # the pipeline YAML or bundle it came from
    evaluation: object | None = None             # the pipeline's EvalConfig, for metrics
    fingerprints: dict[str, str] = field(default_factory=dict)   # each stage's, for provenance
    exported: bool = True                        # a bundle's exported networks (False: its eager weights)
