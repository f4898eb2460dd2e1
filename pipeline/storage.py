"""Atomic on-disk writes, safe reads and per-entry locks: a killed run never leaves a half-written
entry, a file from disk never runs code, and two processes never write one entry at once."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import pickle
import re
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch_geometric.data import Data


class CorruptEntryError(RuntimeError):
    """A cache or data file exists but cannot be read."""


class UnsafeFileError(CorruptEntryError):
    """A file holds Python objects that a trkx file never holds (a planted pickle, say); nothing
    in it was run."""


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# the process's umask, read once at import (os.umask can only be read by setting it)
FILE_MODE = 0o666 & ~_read_umask()
_HOST = socket.gethostname().replace(".", "_") or "host"


def writer_tag(pid: int | None = None) -> str:
    """Who writes a temporary file: host and process id, so a cleaner can tell whether the writer lives."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.
    The file gets the mode the user's umask gives (not mkstemp's 0600)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None   # name the file, not its temporary
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as err:
        if err.filename not in (None, str(tmp)):
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file trkx wrote; a damaged one is a CorruptEntryError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptEntryError(f"{path}: damaged {what} ({type(err).__name__}: {err})") from None


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (torch's unpickling errors run to 40)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def safe_load(path: str | Path, what: str = "file") -> Any:
    """``torch.load`` that cannot run code (``weights_only=True``: tensors, containers, numbers and
    strings only).  A file that holds anything else is an UnsafeFileError, a truncated or foreign
    one a CorruptEntryError; each names the file in one line."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:   # a callable or class in the pickle: what a planted file needs to run code
            raise UnsafeFileError(f"{path}: refused to load this {what}: it holds a Python object ({found.group(1)}) "
                                  f"that a trkx {what} never holds (it may have been tampered with); nothing in "
                                  f"it was run") from None
        raise CorruptEntryError(f"{path}: cannot read {what} (not a torch file, or damaged)") from None
    except Exception as err:  # torch raises several types for damaged zip archives
        raise CorruptEntryError(f"{path}: cannot read {what} ({type(err).__name__}: {first_line(err)})") from None


def save_event(event: Data, path: str | Path) -> None:
    """Save one event graph atomically."""
    with atomic_path(path) as tmp:
        torch.save(event.to_dict(), tmp)


def load_event(path: str | Path) -> Data:
    """Load one event graph; a truncated, foreign or unsafe file raises CorruptEntryError naming it."""
    blob = safe_load(path, "event graph")
    if not isinstance(blob, dict):
        raise CorruptEntryError(f"{path}: not a trkx event graph")
    return Data(**blob)


def _writer_gone(tmp: Path) -> bool:
    """Whether the process that writes temporary file ``tmp`` has ended (same host, no such pid);
    a file from another host is gone once it is a day old (its writer cannot be asked)."""
    parts = tmp.name.split(".")        # "", <name parts>, <host-pid>, <random>, "tmp"
    tag = parts[-3] if len(parts) >= 5 else ""
    host, _, pid = tag.rpartition("-")
    if host != _HOST:
        try:
            return time.time() - tmp.stat().st_mtime > 86400
        except FileNotFoundError:
            return False
    try:
        os.kill(int(pid), 0)          # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):   # alive under another user; no pid in the name
        pass
    return False


def clean_stale_temps(directory: str | Path) -> None:
    """Remove temporary files whose writer has ended (a killed run's); another live process's are kept."""
    directory = Path(directory)
    if directory.is_dir():
        for tmp in directory.rglob(".*.tmp"):
            if _writer_gone(tmp):
                tmp.unlink(missing_ok=True)


@contextmanager
def entry_lock(directory: str | Path, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on the cache entry ``directory`` (a ``.lock`` file in it, ``flock``),
    waiting for another process that holds it; the lock goes with the process, so a killed holder
    never leaves it taken."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not directory.is_dir():
            raise
        yield      # a read-only cache: nothing can be written there, so there is no writer to wait for
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{what or directory}: waiting for another trkx process that writes it ...", file=sys.stderr,
                  flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)          # closing releases the lock


WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}


def os_error_line(err: OSError) -> str:
    """One line for a file-system error: the path and what went wrong in words."""
    where = err.filename or "a file"
    words = WRITE_ERRNOS.get(err.errno, err.strerror or type(err).__name__)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {where}: {words}; free some space (or set cachedir: elsewhere) and run again"
    if err.errno == errno.EROFS:
        return f"cannot write {where}: {words}; point workdir/cachedir at a writable place"
    return f"{where}: {words}"
