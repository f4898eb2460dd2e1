"""Track-fragment merging: joins the pieces of one helix that track building left apart.

Where the graph misses an edge in the middle of a particle's path (the module map never saw that
module pair, or a window was too narrow), edge-based track building returns two fragments of one
helix.  Under double-majority matching each holds at most half of the particle's hits, so the
particle is lost and both fragments count as fakes.  The merge works on the fragments' helix
parameters, not on graph edges:

1. every fragment (>= ``min_hits`` hits, hits ordered by distance from the origin) gets the circle
   through its first, middle and last hit in the transverse plane and the slope dz/dr between its
   first and last hit; from the circle, phi0, the direction at the beam line;
2. candidate pairs are fragments within ``phi_window`` in phi0 and ``cot_window`` in dz/dr (a
   k-d tree on (cos phi0, sin phi0, dz/dr) scaled by the windows);
3. for a pair (A inner, B outer, B starting after A ends and within ``max_gap``): the circle through
   A's first and last and B's last hit must pass within ``tol_xy`` of A's middle and B's first and
   middle hit, and the straight line in (r, z) through A's first and B's last hit within ``tol_z``
   of A's last and B's first hit;
4. (in the labeling stage) each fragment keeps at most one successor and one predecessor, the
   best-fitting (the rule of junction removal), and linked fragments become one track.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def circle_through(x1, y1, x2, y2, x3, y3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (xc, yc) and radius of the circle through three points per row (collinear points
    give a centre far away, not a division by zero)."""
    a, b, c, d = x2 - x1, y2 - y1, x3 - x1, y3 - y1
    e, f = a * (x1 + x2) + b * (y1 + y2), c * (x1 + x3) + d * (y1 + y3)
    g = 2 * (a * (y3 - y2) - b * (x3 - x2))
    g = np.where(np.abs(g) < 1e-9, np.where(g < 0, -1e-9, 1e-9), g)
    xc, yc = (d * e - b * f) / g, (a * f - c * e) / g
    return xc, yc, np.hypot(x1 - xc, y1 - yc)


def fragment_ends(labels: np.ndarray, rho: np.ndarray, min_hits: int) -> tuple[np.ndarray, np.ndarray]:
    """Fragment ids (labels with at least ``min_hits`` hits) and, per fragment, the hit indices of
    its first, middle and last hit by ``rho`` (shape (3, n_fragments))."""
    on = np.nonzero(labels >= 0)[0]
    sizes = np.bincount(labels[on], minlength=1)
    hits = on[sizes[labels[on]] >= min_hits]
    order = hits[np.lexsort((rho[hits], labels[hits]))]
    frags, start, count = np.unique(labels[order], return_index=True, return_counts=True)
    ends = np.stack([order[start], order[start + count // 2], order[start + count - 1]])
    return frags, ends


def helix_parameters(ends: np.ndarray, x: np.ndarray, y: np.ndarray, r: np.ndarray,
                     z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """phi0 (direction at the beam line, from the circle through the three hits) and dz/dr per
    fragment."""
    i1, i2, i3 = ends
    xc, yc, radius = circle_through(x[i1], y[i1], x[i2], y[i2], x[i3], y[i3])
    cross = (x[i2] - x[i1]) * (y[i3] - y[i1]) - (y[i2] - y[i1]) * (x[i3] - x[i1])
    # counter-clockwise travel (cross > 0): the centre lies left of the direction of flight
    phi0 = np.arctan2(yc, xc) - np.sign(cross) * np.pi / 2
    straight = (radius > 1e6) | (cross == 0)
    phi0 = np.where(straight, np.arctan2(y[i3] - y[i1], x[i3] - x[i1]), phi0)
    dr = r[i3] - r[i1]
    # fragments that barely move in r (endcap discs): a steep slope of the right sign
    slope = np.where(np.abs(dr) > 1.0, (z[i3] - z[i1]) / np.where(np.abs(dr) > 1.0, dr, 1.0),
                     np.sign(z[i3] - z[i1]) * 50.0)
    return phi0, np.clip(slope, -50.0, 50.0)


def fragment_links(labels: np.ndarray, r: torch.Tensor, phi: torch.Tensor, z: torch.Tensor, *,
                   min_hits: int = 3, phi_window: float = 0.1, cot_window: float = 0.2,
                   tol_xy: float = 2.0, tol_z: float = 20.0,
                   max_gap: float = 1500.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fragments (labels with >= ``min_hits`` hits; -1 = unassigned), the candidate links
    (2, L) between them as indices into the fragments, inner fragment first, each link's chi2
    (< 1) and gap (mm).  Positions in mm; the tests are those of the module docstring's steps 1-3."""
    r64, phi64, z64 = (t.double().numpy() for t in (r, phi, z))
    x, y = r64 * np.cos(phi64), r64 * np.sin(phi64)
    rho = np.hypot(r64, z64)
    frags, ends = fragment_ends(labels, rho, min_hits)
    none = np.zeros((2, 0), dtype=np.int64), np.zeros(0), np.zeros(0)
    if frags.size < 2:
        return (frags, *none)
    phi0, slope = helix_parameters(ends, x, y, r64, z64)
    points = np.stack([np.cos(phi0) / phi_window, np.sin(phi0) / phi_window, slope / cot_window], axis=1)
    pairs = cKDTree(points).query_pairs(1.0, output_type="ndarray")
    if len(pairs) == 0:
        return (frags, *none)
    i1, i2, i3 = ends
    a, b = pairs[:, 0], pairs[:, 1]
    swap = rho[i1[a]] > rho[i1[b]]                      # A: the fragment that starts nearer the origin
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    gap = rho[i1[b]] - rho[i3[a]]
    ordered = (gap > 0) & (gap < max_gap)
    a, b = a[ordered], b[ordered]
    xc, yc, radius = circle_through(x[i1[a]], y[i1[a]], x[i3[a]], y[i3[a]], x[i3[b]], y[i3[b]])
    off_circle = np.max([np.abs(np.hypot(x[h] - xc, y[h] - yc) - radius) for h in (i2[a], i1[b], i2[b])],
                        axis=0, initial=0.0)
    dzdr = (z64[i3[b]] - z64[i1[a]]) / np.maximum(r64[i3[b]] - r64[i1[a]], 1e-3)
    off_line = np.max([np.abs(z64[i1[a]] + dzdr * (r64[h] - r64[i1[a]]) - z64[h]) for h in (i3[a], i1[b])],
                      axis=0, initial=0.0)
    chi2 = (off_circle / tol_xy) ** 2 + (off_line / tol_z) ** 2
    fit = chi2 < 1.0
    return frags, np.stack([a[fit], b[fit]]).astype(np.int64), chi2[fit], gap[ordered][fit]
