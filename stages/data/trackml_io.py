"""TrackML CSV format: read and write events (``event<ID>-{hits,truth,particles,cells}.csv[.gz]``)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trkx.storage import atomic_path

HIT_COLUMNS = ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"]
TRUTH_COLUMNS = ["hit_id", "particle_id", "tx", "ty", "tz", "tpx", "tpy", "tpz", "weight"]
PARTICLE_COLUMNS = ["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits"]
CELL_COLUMNS = ["hit_id", "ch0", "ch1", "value"]
INT_COLUMNS = {"hit_id", "volume_id", "layer_id", "module_id", "particle_id", "q", "nhits", "ch0", "ch1",
               "geometry_id", "measurement_id"}

_EVENT_RE = re.compile(r"event(\d+)-hits\.csv(\.gz)?$")


class DataError(ValueError):
    """Bad input data; the message names the file and, where it can, the row and column."""


@dataclass
class EventTables:
    """One event as TrackML tables (cells may be None where the digitisation has none; truth and
    particles are None for detector data, which has no truth)."""
    event_id: int
    hits: pd.DataFrame
    truth: pd.DataFrame | None
    particles: pd.DataFrame | None
    cells: pd.DataFrame | None = None


def event_prefix(event_id: int) -> str:
    return f"event{event_id:09d}"


def list_events(directory: str | Path) -> list[int]:
    """Event ids of every ``event<ID>-hits.csv[.gz]`` in a directory, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: input directory not found")
    ids = sorted({int(m.group(1)) for p in directory.iterdir() if (m := _EVENT_RE.match(p.name))})
    if not ids:
        raise DataError(f"{directory}: no event*-hits.csv files found")
    return ids


def _find(directory: Path, event_id: int, kind: str, required: bool = True) -> Path | None:
    for suffix in (".csv", ".csv.gz"):
        path = directory / f"{event_prefix(event_id)}-{kind}{suffix}"
        if path.is_file():
            return path
    # TrackML files are named without zero padding in some releases
    for suffix in (".csv", ".csv.gz"):
        path = directory / f"event{event_id}-{kind}{suffix}"
        if path.is_file():
            return path
    if required:
        raise DataError(f"{directory / (event_prefix(event_id) + '-' + kind + '.csv')}: file not found")
    return None


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read one CSV, checking columns and rejecting missing or non-finite values by row."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise DataError(f"{path}: cannot parse CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (found {', '.join(map(str, df.columns))})")
    df = df[columns]
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: row {row + 2} (line {row + 2}): column '{col}' is missing, "
                            f"not a number or not finite ({df[col].iloc[row]!r})")
        df[col] = values.astype(np.int64 if col in INT_COLUMNS else np.float64)
    return df


def read_trackml_event(directory: str | Path, event_id: int, require_truth: bool = True) -> EventTables:
    """Read one TrackML event (hits, truth, particles, cells if present), .csv or .csv.gz; with
    ``require_truth=False`` an event without a truth file is read as hits only."""
    directory = Path(directory)
    hits_path = _find(directory, event_id, "hits")
    hits = read_table(hits_path, HIT_COLUMNS)
    if len(hits) == 0:
        raise DataError(f"{hits_path}: event has no hits")
    truth_path = _find(directory, event_id, "truth", required=require_truth)
    if truth_path is None:
        cells_path = _find(directory, event_id, "cells", required=False)
        return EventTables(event_id, hits, None, None, read_table(cells_path, CELL_COLUMNS) if cells_path else None)
    truth = read_table(truth_path, TRUTH_COLUMNS)
    if len(truth) != len(hits) or not np.array_equal(np.sort(truth.hit_id.values), np.sort(hits.hit_id.values)):
        raise DataError(f"{truth_path}: hit ids do not match {hits_path.name}")
    particles = read_table(_find(directory, event_id, "particles"), PARTICLE_COLUMNS)
    cells_path = _find(directory, event_id, "cells", required=False)
    cells = read_table(cells_path, CELL_COLUMNS) if cells_path else None
    return EventTables(event_id, hits, truth, particles, cells)


def write_trackml_event(directory: str | Path, tables: EventTables, compress: bool = False) -> None:
    """Write one event in the TrackML CSV layout, each file atomically."""
    directory = Path(directory)
    suffix = ".csv.gz" if compress else ".csv"
    parts = [("hits", tables.hits, HIT_COLUMNS), ("truth", tables.truth, TRUTH_COLUMNS),
             ("particles", tables.particles, PARTICLE_COLUMNS)]
    if tables.cells is not None and len(tables.cells):
        parts.append(("cells", tables.cells, CELL_COLUMNS))
    for kind, df, cols in parts:
        path = directory / f"{event_prefix(tables.event_id)}-{kind}{suffix}"
        with atomic_path(path) as tmp:
            df[cols].to_csv(tmp, index=False, float_format="%.9g",
                            compression="gzip" if compress else None)
