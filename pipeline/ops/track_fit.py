"""How well each track candidate fits one helix: the hits' distances from the circle through its
innermost, middle and outermost hit (transverse plane) and from the straight line in
(arc length, z) through its innermost and outermost hit.

A candidate that follows one particle lies on one helix up to the hit resolution and multiple
scattering; one that switches particles part way (a wrong edge kept at a junction, a wrong
fragment merge) bends away from the circle through its ends.  The largest distance per candidate
is what a track selection cuts on, as a Kalman fit's chi2 is cut on."""
from __future__ import annotations

import numpy as np
import torch

from trkx.ops.merging import circle_through, fragment_ends


def arc_length(chord: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Arc length (mm) of a circle of ``radius`` between two points ``chord`` apart."""
    return 2 * radius * np.arcsin(np.minimum(chord / (2 * radius), 1.0))


def helix_residuals(labels: np.ndarray, r: torch.Tensor, phi: torch.Tensor,
                    z: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates with >= 3 hits (their labels; -1 = unassigned) and, per candidate, the largest
    distance (mm) of a hit from its circle in (x, y) and from its line in (arc length, z)."""
    r64, phi64, z64 = (t.double().numpy() for t in (r, phi, z))
    x, y = r64 * np.cos(phi64), r64 * np.sin(phi64)
    tracks, (i1, i2, i3) = fragment_ends(labels, np.hypot(r64, z64), 3)
    if tracks.size == 0:
        return tracks, np.zeros(0), np.zeros(0)
    xc, yc, radius = circle_through(x[i1], y[i1], x[i2], y[i2], x[i3], y[i3])
    hits = np.nonzero(np.isin(labels, tracks))[0]      # each hit of a candidate ...
    k = np.searchsorted(tracks, labels[hits])           # ... and which one
    off_circle = np.abs(np.hypot(x[hits] - xc[k], y[hits] - yc[k]) - radius[k])
    # z along the helix is linear in the arc length from the first hit
    s = arc_length(np.hypot(x[hits] - x[i1][k], y[hits] - y[i1][k]), radius[k])
    s_last = arc_length(np.hypot(x[i3] - x[i1], y[i3] - y[i1]), radius)
    slope = (z64[i3] - z64[i1]) / np.maximum(s_last, 1e-3)
    # distance from the line, not along z: on the forward discs the coarse coordinate is r, whose
    # error moves a hit along z by the slope times as much
    off_line = np.abs(z64[i1][k] + slope[k] * s - z64[hits]) / np.sqrt(1 + slope[k] ** 2)
    off_line = np.where(s_last[k] > 1.0, off_line, 0.0)  # a candidate that hardly moves in (x, y): no line
    worst_circle, worst_line = np.zeros(tracks.size), np.zeros(tracks.size)
    np.maximum.at(worst_circle, k, off_circle)
    np.maximum.at(worst_line, k, off_line)
    return tracks, worst_circle, worst_line
