"""Shared fixtures: a tiny simulated pipeline copied into a temporary directory."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).parent / "configs"
REPO = Path(__file__).parents[1]


def package_copy(root: Path) -> Path:
    """trkx as an importable copy under ``root/pkg`` (pipeline/ as trkx/, stages/ as trkx/stages/),
    to edit or add to without touching the source tree; run it with PYTHONPATH=<returned>.parent."""
    pkg = root / "pkg" / "trkx"
    shutil.copytree(REPO / "pipeline", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "stages", pkg / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def make_pipeline(root: Path, stage_overrides: dict | None = None, **pipeline_overrides) -> Path:
    """Copy the tiny test configs under ``root`` with workdir ``root/work``; returns the pipeline YAML."""
    dst = root / "configs"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(CONFIGS, dst)
    pipe = yaml.safe_load((dst / "pipeline.yaml").read_text())
    pipe["workdir"] = str(root / "work")
    pipe.update(pipeline_overrides)
    (dst / "pipeline.yaml").write_text(yaml.safe_dump(pipe))
    for name, over in (stage_overrides or {}).items():
        path = dst / "stages" / f"{name}.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg.update(over)
        path.write_text(yaml.safe_dump(cfg))
    return dst / "pipeline.yaml"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny pipeline run once: (pipeline, outputs, seconds)."""
    from trkx.runner import run_pipeline
    root = tmp_path_factory.mktemp("tiny")
    path = make_pipeline(root)
    pipe, outputs, seconds = run_pipeline(path)
    return pipe, outputs, seconds


@pytest.fixture(scope="session")
def tiny_events(tiny_run):
    """Data-stage events of the tiny run (torch_geometric Data)."""
    from trkx.storage import load_event
    pipe, outputs, _ = tiny_run
    return [load_event(p) for s in ("train", "test") for p in outputs[0].paths[s]]
