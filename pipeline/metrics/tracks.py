"""Track-level metrics: matching of reconstructed tracks to particles, efficiency, fake and
duplicate rates, and their dependence on pT and eta.

Matching styles (f = matching fraction, n_s shared hits, n_t track hits, n_p particle hits):
``atlas``    n_s / n_t >= f (track-side majority, as ATLAS truth matching)
``one_way``  n_s / n_p > f (the track holds most of the particle's hits)
``two_way``  n_s / n_t > f and n_s / n_p > f (double majority)
``perfect``  n_s == n_t == n_p
``lhc``      n_s / n_t > 0.75
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STYLES = ("atlas", "one_way", "two_way", "perfect", "lhc")


@dataclass
class TargetSelection:
    pt_min: float = 1.0
    min_hits: int = 3
    eta_max: float = 4.0


def match_pairs(hits: pd.DataFrame, style: str = "two_way", fraction: float = 0.5,
                min_track_hits: int = 1) -> pd.DataFrame:
    """One row per (track, particle) sharing hits, with ``matched`` by the chosen style.
    ``hits``: hit_id, particle_id, track_id (-1 unassigned; particle_id 0 = noise)."""
    if style not in STYLES:
        raise ValueError(f"unknown matching style {style!r} (choose from {', '.join(STYLES)})")
    n_p = hits.groupby("particle_id").size()
    assigned = hits[hits.track_id >= 0]
    n_t = assigned.groupby("track_id").size()
    pairs = assigned.groupby(["track_id", "particle_id"]).size().rename("n_shared").reset_index()
    pairs["n_track"] = n_t.reindex(pairs.track_id).to_numpy()
    pairs["n_particle"] = n_p.reindex(pairs.particle_id).to_numpy()
    s, t, p = (pairs[c].to_numpy(dtype=float) for c in ("n_shared", "n_track", "n_particle"))
    matched = {
        "atlas": s / t >= fraction,
        "one_way": s / p > fraction,
        "two_way": (s / t > fraction) & (s / p > fraction),
        "perfect": (s == t) & (s == p),
        "lhc": s / t > 0.75,
    }[style]
    pairs["matched"] = matched & (pairs.particle_id.to_numpy() != 0) & (t >= min_track_hits)
    return pairs


PARTICLE_COLUMNS = ("pt", "eta", "hard_scatter", "prod_r")   # per-particle truth carried by the hits


def particle_table(hits: pd.DataFrame) -> pd.DataFrame:
    """particle_id, nhits and the per-particle truth columns the hits carry (pt, eta and, where
    present, hard_scatter and prod_r)."""
    real = hits[hits.particle_id != 0]
    cols = {c: (c, "first") for c in PARTICLE_COLUMNS if c in hits.columns}
    return real.groupby("particle_id").agg(**cols, nhits=("hit_id", "size")).reset_index()


def track_metrics(hits: pd.DataFrame, style: str = "two_way", fraction: float = 0.5,
                  target: TargetSelection | None = None, min_track_hits: int = 3) -> dict:
    """Counts and rates for one or several events (``hits`` may hold an ``event_id`` column).

    efficiency = matched target particles / target particles;
    fake_rate = candidate tracks (>= min_track_hits hits) matched to no particle / candidates;
    duplicate_rate = matched candidates beyond the first for each particle / matched candidates."""
    target = target or TargetSelection()
    if "event_id" not in hits.columns:
        hits = hits.assign(event_id=0)
    # track and particle ids are per event: renumber them uniquely across events
    ev = hits.event_id.to_numpy(dtype=np.int64)
    pid = hits.particle_id.to_numpy(dtype=np.int64)
    tid = hits.track_id.to_numpy(dtype=np.int64)
    pcode = pd.MultiIndex.from_arrays([ev, pid]).factorize()[0] + 1
    tcode = pd.MultiIndex.from_arrays([ev, tid]).factorize()[0]
    h = pd.DataFrame({"hit_id": hits.hit_id.to_numpy(), "particle_id": np.where(pid != 0, pcode, 0),
                      "track_id": np.where(tid >= 0, tcode, -1),
                      **{c: hits[c].to_numpy() for c in PARTICLE_COLUMNS if c in hits.columns}})
    pairs = match_pairs(h, style, fraction, min_track_hits=1)
    parts = particle_table(h)
    is_target = (parts.pt >= target.pt_min) & (parts.nhits >= target.min_hits) & (parts.eta.abs() <= target.eta_max)
    matched_particles = set(pairs.particle_id[pairs.matched])
    parts["matched"] = parts.particle_id.isin(matched_particles)
    targets = parts[is_target]
    cand = pairs[pairs.n_track >= min_track_hits]
    track_matched = cand.groupby("track_id")["matched"].any()
    n_tracks = int(track_matched.size)
    n_matched_tracks = int(track_matched.sum())
    # a duplicate is every matched candidate of a particle beyond its first
    per_particle = cand[cand.matched].groupby("particle_id")["track_id"].nunique()
    n_duplicates = int((per_particle - 1).clip(lower=0).sum())
    return {
        "style": style, "matching_fraction": fraction,
        "n_target_particles": int(len(targets)), "n_matched_target_particles": int(targets.matched.sum()),
        "n_tracks": n_tracks, "n_matched_tracks": n_matched_tracks,
        "efficiency": float(targets.matched.mean()) if len(targets) else float("nan"),
        "fake_rate": float(1 - n_matched_tracks / n_tracks) if n_tracks else 0.0,
        "duplicate_rate": float(n_duplicates / n_matched_tracks) if n_matched_tracks else 0.0,
        "_targets": targets,
    }


def efficiency_vs(targets: pd.DataFrame, column: str, bins: np.ndarray) -> dict:
    """Binned efficiency with binomial errors: {edges, efficiency, error, n}."""
    idx = np.digitize(targets[column].to_numpy(), bins) - 1
    ok = (idx >= 0) & (idx < len(bins) - 1)
    n = np.bincount(idx[ok], minlength=len(bins) - 1).astype(float)
    k = np.bincount(idx[ok], weights=targets.matched.to_numpy(dtype=float)[ok], minlength=len(bins) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(n > 0, k / n, np.nan)
        err = np.where(n > 0, np.sqrt(eff * (1 - eff) / n), np.nan)
    return {"edges": bins.tolist(), "efficiency": eff.tolist(), "error": err.tolist(), "n": n.astype(int).tolist()}
