"""Content fingerprints that key the on-disk cache."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-serialisable parts (configs, upstream fingerprints, weight hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | Path, length: int = 16) -> str:
    """SHA-256 of a file's bytes, the first ``length`` hex digits (64: all of it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def weights_digest(path: str | Path) -> str:
    """Hash of the tensors in a saved weights file (torch.save output bytes are not stable)."""
    import torch

    h = hashlib.sha256()

    def feed(obj, key=""):
        if isinstance(obj, torch.Tensor):
            h.update(key.encode())
            h.update(str(obj.dtype).encode())
            h.update(obj.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                feed(obj[k], f"{key}/{k}")
        else:
            h.update(f"{key}={obj!r}".encode())

    from trkx.storage import safe_load   # storage imports torch: kept out of the import of fingerprint

    feed(safe_load(path, "weights file"))
    return h.hexdigest()[:16]
