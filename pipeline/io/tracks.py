"""Reconstructed tracks on disk, in the formats the field reads: TrackML CSV (the submission
format), Parquet (pandas, awkward, Spark) and a ROOT TTree (uproot; ROOT itself not needed).

One file per event, one row per hit: ``hit_id``, ``track_id`` (-1: no track). Parquet and ROOT
add, where the chain fits tracks (the condensation stages), the hit's track's ``track_pt`` [GeV],
``track_eta`` and hit count ``track_hits``; the CSV stays the two-column TrackML submission. Every file is written atomically (a killed run leaves the old file or the new one).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trkx.errors import ConfigError, DataError
from trkx.storage import atomic_path, write_text

TRACK_FORMATS = {"csv": ".csv", "parquet": ".parquet", "root": ".root"}
ROOT_TREE = "tracks"


def track_table(event, fmt: str = "csv") -> pd.DataFrame:
    """The per-hit track table of a labelled event (``track_id`` set by a track builder) for a
    file in ``fmt``."""
    track_id = event.track_id.numpy()
    table = {"hit_id": event.hit_id.numpy(), "track_id": track_id}
    for key in ("track_pt", "track_eta") if fmt != "csv" else ():
        if key in event:
            table[key] = event[key].numpy().astype(np.float32)
    if len(table) > 2:       # a chain that fits tracks: say how many hits each has
        ids, inverse, counts = np.unique(track_id, return_inverse=True, return_counts=True)
        table["track_hits"] = np.where(track_id >= 0, counts[inverse], 0).astype(np.int32)
    return pd.DataFrame(table)


def check_track_format(fmt: str) -> str:
    """``fmt`` if it is a track format, else a ConfigError naming the known ones."""
    if fmt not in TRACK_FORMATS:
        raise ConfigError(f"--format: unknown track format {fmt!r} (known: {', '.join(TRACK_FORMATS)})")
    return fmt


def track_file(directory: Path, event_id: int | str, fmt: str = "csv") -> Path:
    """The path of event ``event_id``'s track file in ``fmt``."""
    return Path(directory) / f"event{event_id}{TRACK_FORMATS[check_track_format(fmt)]}"


def write_track_file(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` to ``path`` in the format its suffix names."""
    fmt = _format_of(path)
    if fmt == "csv":
        write_text(path, table.to_csv(index=False))
        return
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            table.to_parquet(tmp, index=False)
        else:
            import uproot
            columns = {c: table[c].to_numpy() for c in table.columns}
            with uproot.recreate(tmp) as out:       # mktree keeps the branches in this order
                out.mktree(ROOT_TREE, {c: v.dtype for c, v in columns.items()}).extend(columns)


def read_track_file(path: Path) -> pd.DataFrame:
    """A track file of any of the formats, as a DataFrame (``hit_id``, ``track_id``, ...)."""
    fmt = _format_of(path)
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        import uproot
        with uproot.open(path) as f:
            tree = f[ROOT_TREE]
            columns = tree.arrays(library="np")
            return pd.DataFrame({k: columns[k] for k in tree.keys()})    # the branches' written order
    except FileNotFoundError:
        raise
    except Exception as err:    # noqa: BLE001  (each reader has its own errors; name the file)
        raise DataError(f"{path}: unreadable {fmt} track file ({type(err).__name__}: {err})") from None


def find_track_file(directory: Path, event_id: int) -> Path:
    """Event ``event_id``'s track file in ``directory``, whichever format it was written in."""
    found = [p for fmt in TRACK_FORMATS if (p := track_file(directory, event_id, fmt)).is_file()]
    if not found:
        raise FileNotFoundError(f"{track_file(directory, event_id)}: track file not found (run the pipeline first)")
    if len(found) > 1:
        raise DataError(f"{directory}: event {event_id} has track files in more than one format "
                        f"({', '.join(p.name for p in found)})")
    return found[0]


def _format_of(path: Path) -> str:
    for fmt, suffix in TRACK_FORMATS.items():
        if Path(path).suffix == suffix:
            return fmt
    raise DataError(f"{path}: not a track file ({', '.join(TRACK_FORMATS.values())})")
