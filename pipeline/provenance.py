"""Where a result came from: the provenance block stamped into every JSON artefact trkx writes
(metrics, timing, bench, comparison, train.json, the tuning study, the bundle manifest).

It holds the trkx version and git commit (with a dirty flag for uncommitted changes to the
package's sources), the pipeline and its stage fingerprints, the versions of the packages results
depend on, the machine (CPU model, cores, threads used, GPU) and the date.  ``trkx provenance FILE``
prints it.
"""
from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("trkx", "torch", "pytorch-lightning", "torch-geometric", "pyacts", "numpy", "scipy", "pandas",
            "scikit-learn", "faiss-cpu")
SOURCE_DIRS = ("pipeline", "stages")      # the package's sources in a checkout of the repository


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """The commit of the checkout trkx is imported from and whether its sources differ from it
    (None for an installed wheel, which has no checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changes = git("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_DIRS)
    return {"commit": commit, "dirty": bool(changes)}


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """This machine: CPU model, cores, the torch threads in use, the GPU (None without)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"host": socket.gethostname(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "gpu": gpu, "python": platform.python_version(),
            "platform": platform.platform()}


def provenance(pipeline: str | Path | None = None, fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    """The provenance block of a result made now (from ``pipeline`` with these stage fingerprints)."""
    return {"trkx": _version("trkx"), **git_state(),
            "pipeline": str(Path(pipeline).resolve()) if pipeline is not None else None,
            "fingerprints": dict(fingerprints or {}),
            "packages": {p: _version(p) for p in PACKAGES},
            "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def stamped(result: dict, pipeline: str | Path | None = None, fingerprints: dict[str, str] | None = None) -> dict:
    """``result`` with its provenance block (under ``provenance``)."""
    return {**result, "provenance": provenance(pipeline, fingerprints)}


def provenance_text(block: dict) -> str:
    """The block as lines for a terminal or a report."""
    m, pk = block.get("machine") or {}, block.get("packages") or {}
    commit = block.get("commit")
    commit_text = "no git checkout" if commit is None else commit[:12] + (" (uncommitted changes)" if block.get("dirty") else "")
    lines = [f"trkx {block.get('trkx')}, commit {commit_text}, {block.get('date')}",
             f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('threads')} threads used, "
             f"GPU {m.get('gpu') or 'none'} ({m.get('host')})",
             "packages: " + ", ".join(f"{k} {v}" for k, v in pk.items() if v is not None)]
    if block.get("pipeline"):
        lines.append(f"pipeline: {block['pipeline']}")
    for name, fp in (block.get("fingerprints") or {}).items():
        lines.append(f"  {name:<20} {fp}")
    return "\n".join(lines)
