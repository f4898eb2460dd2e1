"""The registry of event file formats (see ``trkx.io``)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trkx.errors import DataError


@dataclass(frozen=True)
class EventFormat:
    name: str
    marker: re.Pattern                     # a file name that marks one event of this format
    list_events: Callable[[Path], list[int]]
    read: Callable[..., object]            # read(directory, event_id, require_truth=True) -> EventTables


FORMATS: dict[str, EventFormat] = {}


def register_format(name: str, marker: str, list_events: Callable, read: Callable) -> None:
    FORMATS[name] = EventFormat(name, re.compile(marker), list_events, read)


def detect_format(directory: Path) -> EventFormat:
    """The format whose event files ``directory`` holds (the first registered that matches)."""
    if not directory.is_dir():
        raise DataError(f"{directory}: input directory not found")
    names = [p.name for p in directory.iterdir()]
    for fmt in FORMATS.values():
        if any(fmt.marker.match(n) for n in names):
            return fmt
    raise DataError(f"{directory}: no events of a known format found ("
                    + ", ".join(f"{f.name}: {f.marker.pattern}" for f in FORMATS.values()) + ")")

