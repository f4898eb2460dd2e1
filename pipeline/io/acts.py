"""ACTS examples CSV output (simhits, measurements, particles) converted to TrackML tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trkx.errors import DataError
from trkx.io.formats import register_format
from trkx.io.trackml import EventTables, check_ids, event_prefix, read_table

PARTICLE_ID_PARTS = ["particle_id_pv", "particle_id_sv", "particle_id_part", "particle_id_gen",
                     "particle_id_subpart"]
# bit widths for packing ACTS's barcode (vertex, secondary vertex, particle, generation, sub-particle)
_ID_BITS = [12, 12, 16, 8, 8]


def pack_particle_id(df: pd.DataFrame) -> np.ndarray:
    """One positive int64 per ACTS barcode, as TrackML's single ``particle_id`` column."""
    packed = np.zeros(len(df), dtype=np.int64)
    for col, bits in zip(PARTICLE_ID_PARTS, _ID_BITS):
        packed = (packed << bits) | df[col].to_numpy(dtype=np.int64)
    return packed


def decode_geometry_id(geometry_id: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(volume, layer, sensitive) from ACTS GeometryIdentifier bits."""
    gid = geometry_id.astype(np.uint64)
    volume = (gid >> np.uint64(56)) & np.uint64(0xFF)
    layer = (gid >> np.uint64(36)) & np.uint64(0xFFF)
    sensitive = (gid >> np.uint64(8)) & np.uint64(0xFFFFF)
    return volume.astype(np.int64), layer.astype(np.int64), sensitive.astype(np.int64)


def trackml_weights(particle_id: np.ndarray, order: np.ndarray, nhits: np.ndarray,
                    pt: np.ndarray) -> np.ndarray:
    """TrackML-style hit weights: larger at the ends of a track and for high-pT particles,
    zero for noise and for particles with 3 hits or fewer, normalised to sum to one."""
    head = np.array([10.0, 8.0, 6.0, 5.0])
    tail = np.array([6.0, 5.0])  # last, second-to-last
    w_order = np.full(order.shape, 3.0)
    from_end = nhits - 1 - order
    w_order = np.where(order < 4, head[np.minimum(order, 3)], w_order)
    w_order = np.where(from_end < 2, tail[np.minimum(from_end, 1)], w_order)
    w_pt = np.clip(0.2 + 0.8 * (pt - 0.5) / 1.5, 0.2, 1.0)
    w = w_order * w_pt
    w[(particle_id == 0) | (nhits <= 3)] = 0.0
    total = w.sum()
    return w / total if total > 0 else w


def read_acts_event(directory: str | Path, event_id: int, require_truth: bool = True) -> EventTables:
    """Read ACTS examples CSVs of one event into TrackML tables (hit = measurement); with
    ``require_truth=False`` an event without the simulated hits is read as measurements only."""
    directory = Path(directory)
    pre = directory / event_prefix(event_id)

    def need(kind: str) -> Path:
        path = Path(f"{pre}-{kind}.csv")
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        return path

    meas = read_table(need("measurements"), ["measurement_id", "geometry_id", "global_x", "global_y", "global_z"])
    if len(meas) == 0:
        raise DataError(f"{need('measurements')}: event has no measurements")
    check_ids(need("measurements"), meas, "measurement_id", first=0)
    volume, layer, module = decode_geometry_id(meas.geometry_id.to_numpy())
    hit_id = meas.measurement_id.to_numpy(dtype=np.int64) + 1
    hits = pd.DataFrame({"hit_id": hit_id, "x": meas.global_x.to_numpy(), "y": meas.global_y.to_numpy(),
                         "z": meas.global_z.to_numpy(), "volume_id": volume, "layer_id": layer,
                         "module_id": module})
    if not require_truth and not Path(f"{pre}-measurement-simhit-map.csv").is_file():
        return EventTables(event_id, hits, None, None, None)
    hit_map = read_table(need("measurement-simhit-map"), ["measurement_id", "hit_id"])
    simhits = pd.read_csv(need("hits"))
    particles_path = Path(f"{pre}-particles_simulated.csv")
    if not particles_path.is_file():
        particles_path = need("particles")
    particles = pd.read_csv(particles_path)

    # one sim hit per measurement (smearing digitisation does not merge)
    hit_map = hit_map.drop_duplicates("measurement_id")
    simhits = simhits.reset_index(drop=True)
    sim = simhits.iloc[hit_map.set_index("measurement_id").loc[meas.measurement_id, "hit_id"].to_numpy()]
    pid = pack_particle_id(sim)

    ppid = pack_particle_id(particles)
    ppt = np.hypot(particles.px.to_numpy(), particles.py.to_numpy())
    pt_of = pd.Series(ppt, index=ppid)
    pt_hit = pt_of.reindex(pid).fillna(0.0).to_numpy()
    nhits_of = pd.Series(pid).value_counts()
    nhits_hit = nhits_of.reindex(pid).to_numpy()
    order = sim["index"].to_numpy(dtype=np.int64)
    # rank of each hit along its particle (the ACTS index may skip non-measured surfaces)
    order = pd.DataFrame({"p": pid, "o": order}).groupby("p")["o"].rank(method="first").to_numpy().astype(np.int64) - 1
    truth = pd.DataFrame({"hit_id": hit_id, "particle_id": pid, "tx": sim.tx.to_numpy(), "ty": sim.ty.to_numpy(),
                          "tz": sim.tz.to_numpy(), "tpx": sim.tpx.to_numpy(), "tpy": sim.tpy.to_numpy(),
                          "tpz": sim.tpz.to_numpy(),
                          "weight": trackml_weights(pid, order, nhits_hit, pt_hit)})
    parts = pd.DataFrame({"particle_id": ppid, "vx": particles.vx, "vy": particles.vy, "vz": particles.vz,
                          "px": particles.px, "py": particles.py, "pz": particles.pz,
                          "q": particles.q.round().astype(np.int64),
                          "nhits": nhits_of.reindex(ppid).fillna(0).to_numpy(dtype=np.int64),
                          "pdg": particles.particle_type.to_numpy(dtype=np.int64),
                          # origin: ACTS's primary vertex number; generation 0 = from the generator
                          # (decays included), above 0 = made by an interaction in the material
                          "vertex_id": particles.particle_id_pv.to_numpy(dtype=np.int64),
                          "primary": (particles.particle_id_gen.to_numpy() == 0).astype(np.int64)})
    return EventTables(event_id, hits, truth, parts, None)


def list_acts_events(directory: str | Path) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: input directory not found")
    ids = sorted(int(p.name[5:14]) for p in directory.glob("event*-measurements.csv"))
    if not ids:
        raise DataError(f"{directory}: no event*-measurements.csv files found")
    return ids


register_format("acts", r"event\d+-measurements\.csv$", list_acts_events, read_acts_event)
