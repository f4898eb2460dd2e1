"""Atomic on-disk writes and event graph files: a killed run never leaves a half-written entry."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch_geometric.data import Data


class CorruptEntryError(RuntimeError):
    """A cache or data file exists but cannot be read."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_event(event: Data, path: str | Path) -> None:
    """Save one event graph atomically."""
    with atomic_path(path) as tmp:
        torch.save(event.to_dict(), tmp)


def load_event(path: str | Path) -> Data:
    """Load one event graph; a truncated or foreign file raises CorruptEntryError naming it."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises several types for damaged zip archives
        raise CorruptEntryError(f"{path}: cannot read event graph ({err})") from None
    if not isinstance(blob, dict):
        raise CorruptEntryError(f"{path}: not a trkx event graph")
    return Data(**blob)


def clean_stale_temps(directory: str | Path) -> None:
    """Remove temporary files left behind by a killed writer."""
    directory = Path(directory)
    if directory.is_dir():
        for tmp in directory.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
