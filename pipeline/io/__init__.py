"""Event file formats, registered by name: TrackML CSV (``trackml``) and ACTS CSV output
(``acts``), each a lister of the event ids in a directory and a reader of one event into
``EventTables``.  A data source with ``source: <format>`` and ``trkx reco`` find the reader here;
a new format is one module that calls ``register_format``."""
from __future__ import annotations

from trkx.io import acts, trackml  # noqa: F401  (each registers its format)
from trkx.io.formats import FORMATS, EventFormat, detect_format, register_format

__all__ = ["FORMATS", "EventFormat", "detect_format", "register_format"]
