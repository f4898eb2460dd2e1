"""Per-frame track purity and efficiency as the proton-CT tracking papers define them (Pettersen
et al. 2020; Kortus et al., whose evaluation code this follows): in each readout frame (event),

- a reconstructed track counts when it has at least ``min_track_hits`` hits and all of them are
  from primaries (not noise);
- it is *correct* when all its hits come from one particle (a correct track may be a fragment);
- purity = correct tracks / counted tracks (0 when a frame has none);
- efficiency = correct tracks / primary particles with hits in the frame.

Both are averaged over frames (mean and standard deviation)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def frame_purity_efficiency(hits: pd.DataFrame, min_track_hits: int) -> dict:
    """``hits``: one row per hit with event_id, particle_id (0 = noise) and track_id (-1 = none)."""
    purity, efficiency = [], []
    for _, ev in hits.groupby("event_id"):
        n_particles = ev.loc[ev.particle_id != 0, "particle_id"].nunique()
        on = ev[ev.track_id >= 0]
        per_track = on.groupby("track_id").particle_id.agg(["size", "nunique", "min"])
        counted = per_track[(per_track["size"] >= min_track_hits) & (per_track["min"] != 0)]
        correct = int((counted["nunique"] == 1).sum())
        purity.append(correct / len(counted) if len(counted) else 0.0)
        efficiency.append(correct / n_particles if n_particles else 0.0)
    return {"purity": float(np.mean(purity)), "purity_std": float(np.std(purity)),
            "efficiency": float(np.mean(efficiency)), "efficiency_std": float(np.std(efficiency)),
            "frames": len(purity), "min_track_hits": min_track_hits}
