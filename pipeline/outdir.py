"""Directories trkx writes (a bundle, reco or simulate output): never one that holds what trkx did not write,
the pipeline's cache or the current directory, unless the user says so; a rerun into an earlier
output of the same kind replaces it, stale files included."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from trkx.config import ConfigError
from trkx.storage import CorruptEntryError, read_json, write_json

RECO_MARKER = ".trkx-reco.json"      # in a reco output directory: the files the last run wrote
SIMULATE_MARKER = ".trkx-simulate.json"   # in a `trkx simulate` output directory


def _holds(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_not_protected(path: Path, protect: Iterable[tuple[Path, str]] = ()) -> None:
    """A ConfigError if ``path`` is, or holds, the current directory or one of ``protect``
    ((directory, what it is) pairs: a pipeline's workdir and cache)."""
    path = path.resolve()
    for directory, what in [(Path.cwd(), "the current directory"), *protect]:
        if _holds(path, Path(directory).resolve()):
            raise ConfigError(f"{path}: holds {what} ({Path(directory).resolve()}); trkx never replaces it, "
                              f"choose another output directory")


def check_output_dir(path: Path, kind: str, is_earlier, overwrite: bool) -> None:
    """``path`` may be written as a trkx ``kind`` output when it is absent, empty, an earlier
    output of that kind (``is_earlier(path)``) or ``overwrite`` is given; else a ConfigError."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not is_earlier(path) and not overwrite:
        raise ConfigError(f"{path}: not empty and not an earlier trkx {kind}; nothing was written "
                          f"(choose a new or empty directory, or pass --overwrite)")


def replace_dir(target: Path, staged: Path) -> None:
    """Put the fully written directory ``staged`` in ``target``'s place (two renames, then the old
    copy is removed), so a killed export leaves the old bundle or the new one, never half of one."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)


def earlier_reco(path: Path) -> bool:
    return (path / RECO_MARKER).is_file()


def reco_files_before(path: Path) -> list[str]:
    """The files an earlier ``trkx reco`` into ``path`` wrote (from its marker)."""
    if not earlier_reco(path):
        return []
    try:
        files = read_json(path / RECO_MARKER, "reco marker").get("files", [])
    except (AttributeError, CorruptEntryError):
        return []       # a damaged marker: nothing is removed
    return [f for f in files if isinstance(f, str) and "/" not in f and not f.startswith(".")]


def finish_reco_dir(path: Path, written: list[str], before: list[str]) -> None:
    """Remove what an earlier run wrote and this one did not (events no longer in the input), then
    record this run's files."""
    for name in set(before) - set(written):
        (path / name).unlink(missing_ok=True)
    write_json(path / RECO_MARKER, {"kind": "reco", "files": sorted(written)})
