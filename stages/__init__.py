"""trkx.stages: the built-in stages, one sub-package per role.

- ``data``: event sources (simulation, TrackML / ACTS CSV readers) and hit transforms;
- ``graph_construction``: metric-learning embedding, radius graphs (FRNN backends), module map;
- ``edge_classification``: edge filter, interaction GNN;
- ``track_building``: connected components, junction removal, walkthrough, assignment.

A stage is one file in its role's folder: ``discover()`` imports every module here, and each
``@register``-decorated class becomes available as ``stage: <name>`` in YAML.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil

ROLE_PACKAGES = ("data", "graph_construction", "edge_classification", "track_building")


@functools.cache
def discover() -> None:
    """Import every module of the role sub-packages (registering their stages), once per process."""
    for package in ROLE_PACKAGES:
        pkg = importlib.import_module(f"{__name__}.{package}")
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
