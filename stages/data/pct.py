"""Proton-CT digital tracking calorimeter (Bergen pCT DTC) simulation: a 230 MeV pencil beam
through a water phantom, two tracking layers and the absorber-sensor calorimeter layers, one
readout frame of ``protons_per_frame`` protons at a time.  The layer stacks follow the DTC
Toolkit's GATE macros (``gate/DTC/Module_final.mac``); the physics is ``pct_physics``.

Coordinates (mm): the beam source at the origin, the beam along +z, the first tracker layer's
front face at ``detector_z_mm``, the phantom ending ``phantom_gap_mm`` before it.  Hits are the
pixel centres of the cluster seeds in each 50 µm ALPIDE sensor, with the cluster size from the
deposited energy (DTC Toolkit's parametrisation)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from trkx.event import hit_xy, register_edge_features
from trkx.stages.data.pct_physics import (AIR, ALUMINIUM, CARBON, KAPTON, SILICON, WATER, M_P, Material,
                                          Protons, transport_slab)

SENSOR_UM = 50.0
TRACKER_VOLUME, CALORIMETER_VOLUME = 1, 2

# (material, thickness µm) front to back; the ALPIDE sensor is the SILICON entry.  Epoxy glue
# layers (5 µm) are counted as kapton.
FLEX_CABLE = [(ALUMINIUM, 30.0), (KAPTON, 20.0), (KAPTON, 5.0), (KAPTON, 75.0), (KAPTON, 5.0),
              (ALUMINIUM, 100.0), (KAPTON, 20.0), (KAPTON, 5.0)]
TRACKER_LAYER = [(CARBON, 1000.0), (KAPTON, 5.0), (SILICON, SENSOR_UM), (AIR, 1480.0)] + FLEX_CABLE   # 2.795 mm
CALORIMETER_LAYER = [(AIR, 25.0), (ALUMINIUM, 3500.0), (KAPTON, 5.0), (ALUMINIUM, 200.0), (KAPTON, 5.0),
                     (SILICON, SENSOR_UM), (AIR, 1480.0)] + FLEX_CABLE + [(AIR, 25.0)]         # 5.55 mm


@dataclass
class PCTConfig:
    """One readout frame: a pencil beam of ``protons_per_frame`` protons, Gaussian spot of width
    ``spot_sigma_mm`` centred uniformly in ±``spot_range_mm`` (x, y) per frame."""
    energy_mev: float = 230.0
    phantom_mm: float = 150.0          # water
    protons_per_frame: int = 100
    spot_sigma_mm: float = 3.0
    spot_range_mm: list[float] = field(default_factory=lambda: [40.0, 20.0])
    tracker_layers: int = 2
    calorimeter_layers: int = 41
    detector_z_mm: float = 300.0       # front face of the first tracker layer
    phantom_gap_mm: float = 20.0       # air between the phantom and the first tracker layer
    phantom_step_mm: float = 5.0       # transport step in the phantom
    pixel_pitch_um: list[float] = field(default_factory=lambda: [29.24, 26.88])
    active_area_mm: list[float] = field(default_factory=lambda: [270.8, 166.3])
    nuclear_interactions: bool = True

    def validate(self) -> None:
        if not 1.0 <= self.energy_mev <= 400.0:
            raise ValueError("pct: key 'energy_mev': need 1 <= energy_mev <= 400")
        if self.phantom_mm < 0 or self.phantom_gap_mm < 0:
            raise ValueError("pct: keys 'phantom_mm', 'phantom_gap_mm': must be >= 0")
        if self.phantom_mm + self.phantom_gap_mm > self.detector_z_mm:
            raise ValueError("pct: the phantom and its gap do not fit in front of 'detector_z_mm'")
        if self.protons_per_frame < 1 or self.tracker_layers < 0 or self.calorimeter_layers < 1:
            raise ValueError("pct: need protons_per_frame >= 1, tracker_layers >= 0, calorimeter_layers >= 1")
        if len(self.spot_range_mm) != 2 or len(self.pixel_pitch_um) != 2 or len(self.active_area_mm) != 2:
            raise ValueError("pct: keys 'spot_range_mm', 'pixel_pitch_um', 'active_area_mm' take two values (x, y)")
        if self.spot_sigma_mm < 0 or self.phantom_step_mm <= 0 or min(self.pixel_pitch_um) <= 0:
            raise ValueError("pct: need spot_sigma_mm >= 0, phantom_step_mm > 0, positive pixel pitch")


def cluster_size(deposit_mev: np.ndarray) -> np.ndarray:
    """Pixels fired by a deposit in a 50 µm ALPIDE: DTC Toolkit's cs = 4.2267 (dE/dx)^0.65 + 0.5
    with dE/dx in keV/µm, rounded, at least one pixel."""
    dedx = np.maximum(deposit_mev, 0.0) * 1000.0 / SENSOR_UM
    return np.maximum(np.rint(4.2267 * dedx**0.65 + 0.5), 1).astype(np.int64)


def layer_stack(cfg: PCTConfig) -> list[tuple[int, list[tuple[Material, float]]]]:
    """(volume id, slabs) per detector layer, front to back."""
    return ([(TRACKER_VOLUME, TRACKER_LAYER)] * cfg.tracker_layers
            + [(CALORIMETER_VOLUME, CALORIMETER_LAYER)] * cfg.calorimeter_layers)


def simulate_frames(cfg: PCTConfig, n_frames: int, rng: np.random.Generator) -> list[pd.DataFrame]:
    """Hit tables of ``n_frames`` readout frames (all frames' protons transported together).
    Columns: hit_id, x, y, z (mm), volume_id, layer_id (0 = first tracker layer), module_id,
    particle_id (1..n per frame), edep (MeV in the sensor), cluster_size, weight, and the
    particle's vx, vy, vz, pt, eta (pt: momentum transverse to the beam, 0 for the beam)."""
    n = cfg.protons_per_frame
    frame = np.repeat(np.arange(n_frames), n)
    spot = (rng.random((n_frames, 2)) * 2 - 1) * np.asarray(cfg.spot_range_mm) / 10.0   # cm
    p = Protons.beam(n * n_frames, cfg.energy_mev, cfg.spot_sigma_mm / 10.0, rng)
    p.x += spot[frame, 0]
    p.y += spot[frame, 1]
    x0, y0 = p.x.copy(), p.y.copy()
    nuclear = cfg.nuclear_interactions

    def slab(material: Material, cm: float, thin: bool = False) -> np.ndarray:
        return transport_slab(p, material, cm, rng, thin=thin, nuclear=nuclear)

    phantom_start = cfg.detector_z_mm - cfg.phantom_gap_mm - cfg.phantom_mm
    slab(AIR, phantom_start / 10.0)
    steps = int(np.ceil(cfg.phantom_mm / cfg.phantom_step_mm - 1e-9))
    for _ in range(steps):
        slab(WATER, cfg.phantom_mm / steps / 10.0)
    slab(AIR, cfg.phantom_gap_mm / 10.0)
    z = cfg.detector_z_mm                            # mm, the next slab's front face
    rows = []
    for layer, (volume, slabs) in enumerate(layer_stack(cfg)):
        for material, um in slabs:
            if material is SILICON:
                seen = p.alive.copy()
                deposit = slab(SILICON, um / 1e4, thin=True)
                idx = np.flatnonzero(seen)
                rows.append((idx, np.full(idx.size, layer), np.full(idx.size, volume), p.x[idx] * 10.0,
                             p.y[idx] * 10.0, np.full(idx.size, z + um / 2000.0), deposit[idx]))
            else:
                slab(material, um / 1e4)
            z += um / 1000.0
        if not p.alive.any():
            break
    if not rows:
        return [_empty_frame() for _ in range(n_frames)]
    idx, layer, volume, hx, hy, hz, edep = (np.concatenate(c) for c in zip(*rows))
    hx, hy, inside = _digitise(hx, hy, cfg)
    table = pd.DataFrame({
        "frame": frame[idx], "x": hx, "y": hy, "z": hz, "volume_id": volume, "layer_id": layer,
        "module_id": 0, "particle_id": idx % n + 1, "edep": edep, "cluster_size": cluster_size(edep),
        "vx": x0[idx] * 10.0, "vy": y0[idx] * 10.0, "vz": 0.0, "pt": 0.0,
        "eta": np.arcsinh(np.sqrt(cfg.energy_mev**2 + 2 * cfg.energy_mev * M_P) / 1e-9 / 1e3)})[inside]
    by_frame = dict(tuple(table.groupby("frame")))
    frames = []
    for f in range(n_frames):
        df = by_frame.get(f, table.iloc[:0]).drop(columns="frame").sort_values(["layer_id", "particle_id"])
        # TrackML hit weights sum to one per event: every hit weighs the same
        frames.append(df.reset_index(drop=True).assign(hit_id=np.arange(1, len(df) + 1), weight=1.0 / max(len(df), 1)))
    return frames


def _digitise(x: np.ndarray, y: np.ndarray, cfg: PCTConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres of the hit positions, and which lie on the sensors' active area."""
    out = []
    for pos, pitch_um, size in ((x, cfg.pixel_pitch_um[0], cfg.active_area_mm[0]),
                                (y, cfg.pixel_pitch_um[1], cfg.active_area_mm[1])):
        pitch = pitch_um / 1000.0
        out.append((np.floor((pos + size / 2) / pitch) + 0.5) * pitch - size / 2)
    inside = (np.abs(x) < cfg.active_area_mm[0] / 2) & (np.abs(y) < cfg.active_area_mm[1] / 2)
    return out[0], out[1], inside


def _empty_frame() -> pd.DataFrame:
    cols = ["hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id", "particle_id", "edep",
            "cluster_size", "weight", "vx", "vy", "vz", "pt", "eta"]
    return pd.DataFrame({c: [] for c in cols})


PLANAR_EDGE_FEATURES = ("dx", "dy", "dz", "slope_x", "slope_y", "angle")   # as many as the collider set


@register_edge_features("planar")
def planar_edge_features(event: Data, edge_index: torch.Tensor) -> torch.Tensor:
    """The edge features of proton-CT frames (layers are planes across a beam along z), (E, 6):
    Δx, Δy (mm), Δz (cm), the slopes Δx/Δz and Δy/Δz and the angle to the beam axis (×10:
    scattering angles are tens of mrad)."""
    src, dst = edge_index[0], edge_index[1]
    x, y = hit_xy(event)
    dx, dy, dz = x[dst] - x[src], y[dst] - y[src], event.z[dst] - event.z[src]
    safe_dz = torch.where(dz.abs() < 1e-3, torch.full_like(dz, 1e-3), dz)
    angle = torch.atan2(torch.hypot(dx, dy), dz.abs())
    return torch.stack([dx, dy, dz / 10.0, dx / safe_dz * 10.0, dy / safe_dz * 10.0, angle * 10.0], dim=-1)
