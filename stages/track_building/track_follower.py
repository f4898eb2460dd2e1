"""The classical proton-CT track follower (Pettersen et al. 2020, the baseline of Kortus et al.):
tracks start at the rear, where protons stop, and are followed towards the front layer by layer.
In each layer every open track takes the hit that bends it least: the smallest angle between its
last segment and the new one (a track of one hit measures against the beam axis), within a
search cone.  Conflicts go to the smaller angle (greedy matching); hits no track takes start new
tracks.  It reads hits only: no graph and no edge scores."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from trkx.stage import TrackBuilder, register
from trkx.stages.track_building.labeling import drop_small


@dataclass
class TrackFollowerConfig:
    max_angle: float = 0.3        # rad: search cone around the track's last segment
    seed_max_angle: float = 0.4   # rad: search cone around the beam axis for a track of one hit
    min_hits: int = 5             # shorter tracks are left unassigned (-1)

    def validate(self) -> None:
        if not 0 < self.max_angle < np.pi / 2 or not 0 < self.seed_max_angle < np.pi / 2:
            raise ValueError("keys 'max_angle' and 'seed_max_angle': need 0 < angle < pi/2")
        if self.min_hits < 1:
            raise ValueError("key 'min_hits': must be >= 1")


def greedy_matching(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Mask of the candidate pairs (a, b) that greedy matching by increasing cost keeps (each a
    and each b at most once), in rounds of mutually-best pairs (vectorised; ties go to the earlier
    pair).  ``a`` and ``b``: non-negative integer ids."""
    keep = np.zeros(a.size, dtype=bool)
    if not a.size:
        return keep
    order = np.argsort(cost, kind="stable")
    a_sorted, b_sorted = a[order], b[order]
    used_a = np.zeros(int(a.max()) + 1, dtype=bool)
    used_b = np.zeros(int(b.max()) + 1, dtype=bool)
    live = np.arange(a.size)                   # positions (in cost order) of the pairs still possible
    while live.size:
        la, lb = a_sorted[live], b_sorted[live]
        rank = np.arange(live.size)
        # each a's (and b's) cheapest live pair, by scatter-min of the rank (no sort per round)
        first_a = np.full(used_a.size, live.size)
        np.minimum.at(first_a, la, rank)
        first_b = np.full(used_b.size, live.size)
        np.minimum.at(first_b, lb, rank)
        mutual = (first_a[la] == rank) & (first_b[lb] == rank)
        keep[order[live[mutual]]] = True
        used_a[la[mutual]] = True
        used_b[lb[mutual]] = True
        live = live[~used_a[la] & ~used_b[lb]]
    return keep


def follow_tracks(layer: np.ndarray, pos: np.ndarray, max_angle: float, seed_max_angle: float) -> np.ndarray:
    """Track id per hit (every hit gets one; single-hit tracks included) from the rear layer to the
    front; ``pos``: (N, 3) hit positions, ``layer``: plane index growing downstream."""
    track = np.full(layer.size, -1, dtype=np.int64)
    head = prev = tid = np.zeros(0, dtype=np.int64)
    n_tracks = 0
    beam = np.array([0.0, 0.0, -1.0])          # direction of travel when following upstream
    for lay in np.unique(layer)[::-1]:
        hits = np.flatnonzero(layer == lay)
        free = np.ones(hits.size, dtype=bool)
        new_head, new_prev, new_tid = [], [], []
        if head.size and hits.size:
            t, h = (g.ravel() for g in np.meshgrid(np.arange(head.size), np.arange(hits.size), indexing="ij"))
            seg = pos[hits[h]] - pos[head[t]]
            has_prev = prev[t] >= 0
            last = np.where(has_prev[:, None], pos[head[t]] - pos[np.maximum(prev[t], 0)], beam)
            cos = (seg * last).sum(1) / np.maximum(np.linalg.norm(seg, axis=1) * np.linalg.norm(last, axis=1), 1e-12)
            angle = np.arccos(np.clip(cos, -1.0, 1.0))
            ok = angle <= np.where(has_prev, max_angle, seed_max_angle)
            t, h, angle = t[ok], h[ok], angle[ok]
            take = greedy_matching(t, h, angle)
            t, h = t[take], h[take]
            track[hits[h]] = tid[t]
            free[h] = False
            new_head, new_prev, new_tid = [hits[h]], [head[t]], [tid[t]]
        seeds = hits[free]
        track[seeds] = n_tracks + np.arange(seeds.size)
        head = np.concatenate(new_head + [seeds])
        prev = np.concatenate(new_prev + [np.full(seeds.size, -1)])
        tid = np.concatenate(new_tid + [n_tracks + np.arange(seeds.size)])
        n_tracks += seeds.size
    return track


@register("track_follower")
class TrackFollower(TrackBuilder):
    """Adds ``track_id`` per hit by following tracks from the rear layers to the front."""
    Config = TrackFollowerConfig
    needs_edge_scores = False

    def infer(self, event: Data) -> Data:
        c = self.config
        r, phi = event.r.double(), event.phi.double()     # double: the angles decide conflicts
        pos = torch.stack([r * torch.cos(phi), r * torch.sin(phi), event.z.double()], 1).numpy()
        labels = follow_tracks(event.layer_id.numpy(), pos, c.max_angle, c.seed_max_angle)
        event.track_id = torch.as_tensor(drop_small(labels, c.min_hits), dtype=torch.long)
        return event
