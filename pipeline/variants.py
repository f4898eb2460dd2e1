"""Variants of a pipeline for benchmarks and scans: the same chain with one stage's YAML changed,
in a workdir of its own that shares the original's cache (the data and every unchanged upstream
stage are reused, never made again)."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from trkx.config import load_yaml


def merged(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s keys set, nested sections merged key by key."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merged(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def variant_pipeline(pipe, stage_name: str, extra: dict, workdir: Path, tmp: Path, slug: str) -> Path:
    """A pipeline YAML written under ``tmp``: ``pipe``'s, with stage ``stage_name``'s YAML plus
    ``extra``, working in ``workdir`` and caching in ``pipe``'s cache."""
    stages = []
    for stage in pipe.stages:
        path = Path(stage.source).resolve()
        if stage.name == stage_name:
            path = tmp / f"{slug}-{stage.name}.yaml"
            path.write_text(yaml.safe_dump(merged(load_yaml(Path(stage.source)), extra)))
        stages.append(str(path))
    return _write_pipeline(pipe, stages, workdir, tmp, slug)


def with_stage_after(pipe, after: str, stage: dict, workdir: Path, tmp: Path, slug: str) -> Path:
    """A pipeline YAML written under ``tmp``: ``pipe``'s with the stage ``stage`` (a stage YAML's
    keys) inserted after stage ``after``, working in ``workdir`` and caching in ``pipe``'s cache."""
    extra = tmp / f"{slug}-{stage.get('name', stage['stage'])}.yaml"
    extra.write_text(yaml.safe_dump(stage))
    stages = []
    for s in pipe.stages:
        stages.append(str(Path(s.source).resolve()))
        if s.name == after:
            stages.append(str(extra))
    return _write_pipeline(pipe, stages, workdir, tmp, slug)


def _write_pipeline(pipe, stages: list[str], workdir: Path, tmp: Path, slug: str) -> Path:
    """``pipe``'s YAML with these stage files, ``workdir`` and ``pipe``'s cache, written under ``tmp``."""
    raw = load_yaml(pipe.path)
    raw.update({"workdir": str(Path(workdir).resolve()), "cachedir": str(pipe.cachedir.resolve()),
                "data": str(Path(pipe.data.source).resolve()), "stages": stages})
    out = tmp / f"{slug}.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out
