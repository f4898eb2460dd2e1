"""TrackML CSV format: read and write events (``event<ID>-{hits,truth,particles,cells}.csv[.gz]``)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trkx.errors import DataError
from trkx.io.formats import register_format
from trkx.storage import atomic_path

HIT_COLUMNS = ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"]
TRUTH_COLUMNS = ["hit_id", "particle_id", "tx", "ty", "tz", "tpx", "tpy", "tpz", "weight"]
PARTICLE_COLUMNS = ["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits"]
# written by trkx's simulation, read where present (TrackML's own files do not have them)
ORIGIN_COLUMNS = ["pdg", "vertex_id", "hard_scatter", "primary"]
CELL_COLUMNS = ["hit_id", "ch0", "ch1", "value"]
INT_COLUMNS = {"hit_id", "volume_id", "layer_id", "module_id", "particle_id", "q", "nhits", "ch0", "ch1",
               "geometry_id", "measurement_id", *ORIGIN_COLUMNS}
UINT_COLUMNS = {"geometry_id"}      # ACTS GeometryIdentifier: 64 bits, the volume in the top 8

_EVENT_RE = re.compile(r"event(\d+)-hits\.csv(\.gz)?$")



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


def read_table(path: Path, columns: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read one CSV, checking columns and rejecting missing or non-finite values by row; the
    ``optional`` columns are kept (and checked) where the file has them."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise DataError(f"{path}: cannot parse CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (found {', '.join(map(str, df.columns))})")
    columns = list(columns) + [c for c in optional if c in df.columns]
    df = df[columns].copy()
    for col in columns:
        numeric = pd.to_numeric(df[col], errors="coerce")
        values = numeric.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            _bad_row(path, df, col, bad, "is missing, not a number or not finite")
        if col in INT_COLUMNS:
            # an id column: no fraction (1.5 would be cut to 1) and nothing int64 cannot hold
            _bad_row(path, df, col, values != np.floor(values), "is not an integer")
            dtype = np.uint64 if col in UINT_COLUMNS else np.int64
            lo, hi = (0.0, 2.0**64) if col in UINT_COLUMNS else (-2.0**63, 2.0**63)
            _bad_row(path, df, col, (values >= hi) | (values < lo), f"does not fit in a {np.dtype(dtype).name}")
            # integer text is kept exact (float64 rounds ids above 2^53)
            df[col] = numeric.astype(dtype) if numeric.dtype.kind in "iu" else values.astype(dtype)
        else:
            df[col] = values
    return df


def check_ids(path: Path, table: pd.DataFrame, col: str = "hit_id", first: int = 1) -> None:
    """Ids that name hits: unique integers from ``first`` up (TrackML numbers hits from 1, ACTS
    measurements from 0)."""
    ids = table[col].to_numpy()
    _bad_row(path, table, col, ids < first, f"is below {first}" if first else "is negative")
    _bad_row(path, table, col, pd.Series(ids).duplicated().to_numpy(), "repeats an earlier row's id")


def _bad_row(path: Path, df: pd.DataFrame, col: str, bad: np.ndarray, what: str) -> None:
    """A DataError naming the first row where ``bad`` holds: data row (1 is the first after the
    header), file line and column."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: row {row + 1} (line {row + 2}): column '{col}' {what} "
                        f"({str(df[col].iloc[row])[:40]!r})")


def read_trackml_event(directory: str | Path, event_id: int, require_truth: bool = True) -> EventTables:
    """Read one TrackML event (hits, truth, particles, cells if present), .csv or .csv.gz; with
    ``require_truth=False`` an event without a truth file is read as hits only."""
    directory = Path(directory)
    hits_path = _find(directory, event_id, "hits")
    hits = read_table(hits_path, HIT_COLUMNS)
    if len(hits) == 0:
        raise DataError(f"{hits_path}: event has no hits")
    check_ids(hits_path, hits)
    truth_path = _find(directory, event_id, "truth", required=require_truth)
    if truth_path is None:
        cells_path = _find(directory, event_id, "cells", required=False)
        return EventTables(event_id, hits, None, None, read_table(cells_path, CELL_COLUMNS) if cells_path else None)
    truth = read_table(truth_path, TRUTH_COLUMNS)
    if len(truth) != len(hits) or not np.array_equal(np.sort(truth.hit_id.values), np.sort(hits.hit_id.values)):
        raise DataError(f"{truth_path}: hit ids do not match {hits_path.name}")
    particles_path = _find(directory, event_id, "particles")
    particles = read_table(particles_path, PARTICLE_COLUMNS, optional=tuple(ORIGIN_COLUMNS))
    # a hit's particle missing from particles.csv would get pT 0 and drop out of the targets unseen
    _bad_row(truth_path, truth, "particle_id",
             (truth.particle_id.to_numpy() != 0) & ~np.isin(truth.particle_id.to_numpy(), particles.particle_id.to_numpy()),
             f"names a particle that {particles_path.name} does not list")
    cells_path = _find(directory, event_id, "cells", required=False)
    cells = read_table(cells_path, CELL_COLUMNS) if cells_path else None
    return EventTables(event_id, hits, truth, particles, cells)


def write_trackml_event(directory: str | Path, tables: EventTables, compress: bool = False) -> None:
    """Write one event in the TrackML CSV layout, each file atomically."""
    directory = Path(directory)
    suffix = ".csv.gz" if compress else ".csv"
    origin = [c for c in ORIGIN_COLUMNS if c in tables.particles.columns]
    parts = [("hits", tables.hits, HIT_COLUMNS), ("truth", tables.truth, TRUTH_COLUMNS),
             ("particles", tables.particles, PARTICLE_COLUMNS + origin)]
    if tables.cells is not None and len(tables.cells):
        parts.append(("cells", tables.cells, CELL_COLUMNS))
    for kind, df, cols in parts:
        path = directory / f"{event_prefix(tables.event_id)}-{kind}{suffix}"
        with atomic_path(path) as tmp:
            df[cols].to_csv(tmp, index=False, float_format="%.9g",
                            compression="gzip" if compress else None)


register_format("trackml", r"event\d+-hits\.csv(\.gz)?$", list_events, read_trackml_event)
