"""TrackNETv2 as a track builder (Ariadne): a recurrent network follows every track candidate
station by station and predicts, on the next station, an ellipse where its next hit should lie;
the hits inside it are the candidate's continuations.  It reads hits only (no graph, no edge
scores).

**Stations.** A station is a detector layer (volume, layer).  A layer is a *barrel* station when
its hits spread more in z than in r (local coordinates r̄·Δφ and Δz from the candidate's last
hit), else a *plane* (the transverse step turned by -φ of the last hit).  The hits are swept by
their distance from the origin, in ``slices`` slices, and within a slice layer by layer in the
order of the layers' mean distance: on the collider detector the order in which a particle from
the beam line crosses barrel layers and end-cap disks, on the pCT planes the beam's.  The share
of the training truth steps that go forward in the sweep is ``forward_steps`` in ``train.json``
(the rest stay within one layer: overlapping modules, the second visit below).  The steps
particles took in training from one layer to another (skipped layers included) are the only ones
the follower tries.

**Following.** Every open candidate that may step onto a cell's station gets its ellipse, its
semi-axes scaled so that ``inside_quantile`` of the validation next hits fell inside (per step
kind; ``ellipse_radius`` in ``train.json``) and by ``ellipse_scale``; each free hit inside is a
possible continuation (a cell is visited twice: a candidate that took a hit may take a second one
of the same layer); conflicts go to the likelier candidate (greedy matching on the Gaussian
cost ½ d² + log of the ellipse's area, so that a broad ellipse does not win by its breadth); every
hit no candidate takes starts a new one.  A candidate is closed once the sweep has moved more than
``max_gap`` (distance from the origin) past its last hit.

**Training** (Lightning, one event per step): the truth particles' hit sequences (pT ≥
``train_pt_min``, at least 3 hits, their first ``max_length`` hits), grouped by length
(``ToBuckets``'s grouping), with Ariadne's loss: the next hit's distance from the ellipse's centre
in semi-axis units (times ``point_weight``) plus ``area_weight`` times the product of the
semi-axes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch_geometric.data import Data

from trkx.losses import tracknet_loss
from trkx.models.tracknet import TrackNETConfig, TrackNETv2, ellipse_distance
from trkx.stage import TrackBuilder, register
from trkx.stages.data.transforms import constraints_normalize, length_buckets
from trkx.stages.graph_construction.module_map import module_key
from trkx.stages.track_building.condensation import MappedEvents
from trkx.stages.track_building.labeling import drop_small
from trkx.stages.track_building.track_follower import greedy_matching
from trkx.storage import atomic_path, safe_load
from trkx.training import LightningStage, TrackingModule, TrainingConfig

HIT_FEATURES = 5       # r, z normalised by the detector's extents; the step from the last hit (Δr, r·Δφ, Δz)
STATION_FEATURES = 4   # barrel, plane; the station's r (barrel) or z (plane) by the extents, and from the last hit


@dataclass
class TrackNETStageConfig(TrackNETConfig, TrainingConfig):
    """The network's keys (``TrackNETConfig``), the training ones and the follower's."""
    epochs: int = 30
    lr: float = 3e-3
    point_weight: float = 0.9      # Ariadne's loss: the next hit's distance in semi-axis units ...
    area_weight: float = 0.1       # ... plus this times the ellipse's area (local units²)
    local_scale: float = 10.0      # mm: one local unit on a station
    train_pt_min: float = 0.0      # GeV: particles below this pT are not trained on
    max_length: int = 16           # the first hits of each particle trained on
    batch_size: int = 256          # sequences per bucket batch
    slices: int = 16               # the sweep's slices in distance from the origin (see the module's notes)
    inside_quantile: float = 0.99  # the ellipses are scaled so that this share of the validation next hits fall inside
    ellipse_scale: float = 1.0     # ... and then by this factor at inference
    max_gap: float = 400.0         # mm: candidates whose last hit lies this far behind the sweep are closed
    min_hits: int = 5              # shorter tracks are left unassigned (-1)

    inference_only: ClassVar[tuple[str, ...]] = ("quantize", "ellipse_scale", "max_gap", "min_hits")

    def validate(self) -> None:
        TrackNETConfig.validate(self)
        if self.local_scale <= 0 or self.ellipse_scale <= 0:
            raise ValueError("keys 'local_scale' and 'ellipse_scale': must be positive")
        if self.slices < 1 or not 0 < self.inside_quantile <= 1:
            raise ValueError("tracknet: need slices >= 1 and 0 < inside_quantile <= 1")
        if self.max_length < 2 or self.batch_size < 1 or self.max_gap <= 0 or self.min_hits < 1:
            raise ValueError("tracknet: need max_length >= 2, batch_size >= 1, max_gap > 0, min_hits >= 1")
        if self.quantize != "none":
            raise ValueError("key 'quantize': tracknet runs in fp32 only")


def positions(event: Data) -> torch.Tensor:
    """(N, 3) hit positions x, y, z (mm) from the event's r, φ, z."""
    r, phi = event.r.double(), event.phi.double()
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), event.z.double()], 1)


def hit_order(track_edges: torch.Tensor, n: int) -> torch.Tensor:
    """Each hit's index along its particle (0 at the first hit; -1 for hits in no truth edge), from
    the consecutive truth edges, by pointer doubling (vectorised)."""
    pred = torch.full((n,), -1, dtype=torch.long)
    pred[track_edges[1]] = track_edges[0]
    on = torch.zeros(n, dtype=torch.bool)
    on[track_edges.flatten()] = True
    depth = (pred >= 0).long()
    jump = pred.clone()
    while bool((jump >= 0).any()):
        ok = jump >= 0
        depth = torch.where(ok, depth + torch.where(ok, depth[jump.clamp(min=0)], 0), depth)
        jump = torch.where(ok, jump[jump.clamp(min=0)], jump)
    return torch.where(on, depth, torch.full_like(depth, -1))


def sweep_cells(rho: torch.Tensor, layer: torch.Tensor, stations: dict) -> torch.Tensor:
    """Each hit's place in the sweep: its distance-from-the-origin slice first, then its layer's
    rank by the layers' mean distance (hits of one layer in one slice form one cell)."""
    k = stations["slices"]
    frac = (rho - stations["rho_lo"]) / (stations["rho_hi"] - stations["rho_lo"])
    slice_ = (frac * k).floor().clamp(0, k - 1).long()
    return slice_ * stations["layers"].numel() + stations["layer_rank"][layer]


def build_stations(events, slices: int) -> dict[str, torch.Tensor]:
    """The station table from training events: sorted layer keys, per layer its kind (barrel),
    position and rank by mean distance from the origin, the allowed steps (layer -> layer), the
    distance slices of the sweep and the detector's extents."""
    keys, r, z, steps, xyz, truth = [], [], [], [], [], []
    offset = 0
    for event in events:
        layer = module_key(event, "layer")
        truth.append(event.track_edges + offset)
        offset += event.num_nodes
        keys.append(layer)
        r.append(event.r.double())
        z.append(event.z.double())
        steps.append(torch.stack([layer[event.track_edges[0]], layer[event.track_edges[1]]]))
        xyz.append(positions(event))
    keys, r, z = torch.cat(keys), torch.cat(r), torch.cat(z)
    layers, inv = torch.unique(keys, return_inverse=True)
    n = layers.numel()

    def per_layer(v, how):
        return torch.full((n,), float("inf") if how == "amin" else float("-inf"), dtype=torch.double) \
            .scatter_reduce(0, inv, v, how)
    barrel = (per_layer(r, "amax") - per_layer(r, "amin")) < (per_layer(z, "amax") - per_layer(z, "amin"))
    count = torch.bincount(inv, minlength=n).double()
    mean = lambda v: torch.zeros(n, dtype=torch.double).index_add(0, inv, v) / count   # noqa: E731
    rho = torch.hypot(r, z)
    layer_rank = torch.argsort(torch.argsort(mean(rho), stable=True))
    steps = torch.searchsorted(layers, torch.cat(steps, 1))
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[steps[0], steps[1]] = True
    xyz = torch.cat(xyz)
    lo, hi = xyz.min(0).values, xyz.max(0).values
    pad = 0.05 * (hi - lo) + 1.0
    table = {"layers": layers, "barrel": barrel, "position": torch.where(barrel, mean(r), mean(z)),
             "layer_rank": layer_rank, "allowed": allowed, "lo": lo - pad, "hi": hi + pad,
             "rho_lo": rho.min(), "rho_hi": rho.max() + 1e-6, "slices": slices, "radius": torch.ones(2, dtype=torch.double)}
    # the share of the truth steps that the sweep can follow (the next hit's cell comes later)
    cell, truth = sweep_cells(rho, inv, table), torch.cat(truth, 1)
    table["forward_steps"] = (cell[truth[1]] > cell[truth[0]]).double().mean()
    return table



def hit_inputs(xyz: torch.Tensor, prev: torch.Tensor | None, stations: dict, local_scale: float) -> torch.Tensor:
    """(n, 5) network inputs, unchanged by rotations about the beam: r and z mapped to [-1, 1] by
    the detector's extents (``ConstraintsNormalize``'s mapping), and the step from ``prev`` (zeros for a first hit) as Δr, r·Δφ and Δz in
    units of ten local units."""
    reach = torch.maximum(stations["lo"].abs(), stations["hi"].abs())
    r = torch.hypot(xyz[:, 0], xyz[:, 1])
    if prev is None:
        step = torch.zeros_like(xyz)
    else:
        r0 = torch.hypot(prev[:, 0], prev[:, 1])
        dphi = wrap(torch.atan2(xyz[:, 1], xyz[:, 0]) - torch.atan2(prev[:, 1], prev[:, 0]))
        step = torch.stack([r - r0, r * dphi, xyz[:, 2] - prev[:, 2]], 1) / (10 * local_scale)
    r_norm = constraints_normalize(r, 0.0, reach[:2].max())
    z_norm = constraints_normalize(xyz[:, 2], stations["lo"][2], stations["hi"][2])
    return torch.cat([r_norm[:, None], z_norm[:, None], step], 1).float()


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles in [-π, π)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def station_inputs(station: torch.Tensor, last: torch.Tensor, stations: dict, local_scale: float) -> torch.Tensor:
    """(n, 4) description of the stations ``station`` (layer indices) as seen from the candidates'
    last hits ``last`` (n, 3): barrel, plane, the station's r or z by the extent, and how far it
    lies beyond the last hit (Δr on a barrel, Δz on a plane: the lever arm), in local units."""
    barrel = stations["barrel"][station]
    reach = torch.maximum(stations["lo"].abs(), stations["hi"].abs())
    extent = torch.where(barrel, reach[:2].max(), reach[2])
    position = stations["position"][station]
    lever = position - torch.where(barrel, torch.hypot(last[:, 0], last[:, 1]), last[:, 2])
    return torch.stack([barrel.double(), (~barrel).double(), position / extent, lever / local_scale], 1).float()


def local_coords(xyz: torch.Tensor, last: torch.Tensor, station: torch.Tensor, stations: dict,
                 local_scale: float) -> torch.Tensor:
    """(n, 2) hits ``xyz`` on ``station`` relative to the candidates' last hits ``last``, in local
    units and unchanged by rotations about the beam: on a barrel (r̄·Δφ, Δz); on a plane the
    transverse step (Δx, Δy) turned by -φ of the last hit (along and across its radius)."""
    barrel = stations["barrel"][station]
    phi_last = torch.atan2(last[:, 1], last[:, 0])
    dphi = wrap(torch.atan2(xyz[:, 1], xyz[:, 0]) - phi_last)
    dx, dy = xyz[:, 0] - last[:, 0], xyz[:, 1] - last[:, 1]
    c, s = torch.cos(phi_last), torch.sin(phi_last)
    u = torch.where(barrel, stations["position"][station] * dphi, c * dx + s * dy)
    v = torch.where(barrel, xyz[:, 2] - last[:, 2], -s * dx + c * dy)
    return (torch.stack([u, v], 1) / local_scale).float()


def training_sequences(event: Data, stations: dict, cfg: TrackNETStageConfig) -> dict[str, list[torch.Tensor]]:
    """The event's truth sequences as bucket batches: per batch (B, L, 6) hit inputs, (B, L-1, 3)
    next stations and (B, L-1, 2) next-hit local coordinates."""
    n = event.num_nodes
    order = hit_order(event.track_edges, n)
    layer = torch.searchsorted(stations["layers"], module_key(event, "layer")).clamp(max=stations["layers"].numel() - 1)
    pid = event.particle_id
    ok = (order >= 0) & (order < cfg.max_length) & (event.pt >= cfg.train_pt_min)
    hits = torch.nonzero(ok).squeeze(1)
    hits = hits[torch.argsort(pid[hits] * (cfg.max_length + 1) + order[hits], stable=True)]
    _, length = torch.unique_consecutive(pid[hits], return_counts=True)
    xyz = positions(event)
    out: dict[str, list[torch.Tensor]] = {"hits": [], "stations": [], "targets": [], "same_layer": []}
    start = torch.cumsum(length, 0) - length
    keep = length >= 3
    for batch in length_buckets(length[keep].numpy(), cfg.batch_size):
        L = int(length[keep][batch[0]])
        seq = hits[start[keep][batch][:, None] + torch.arange(L)]            # (B, L) hit indices
        pos = xyz[seq]
        prev = torch.cat([pos[:, :1], pos[:, :-1]], 1)
        inp = hit_inputs(pos.reshape(-1, 3), prev.reshape(-1, 3), stations, cfg.local_scale).view(len(batch), L, -1)
        nxt = layer[seq[:, 1:]].reshape(-1)
        out["same_layer"].append(layer[seq[:, 1:]] == layer[seq[:, :-1]])
        out["hits"].append(inp)
        out["stations"].append(station_inputs(nxt, pos[:, :-1].reshape(-1, 3), stations, cfg.local_scale)
                               .view(len(batch), L - 1, -1))
        out["targets"].append(local_coords(pos[:, 1:].reshape(-1, 3), pos[:, :-1].reshape(-1, 3), nxt, stations,
                                           cfg.local_scale).view(len(batch), L - 1, 2))
    return out


class TrackNETModule(TrackingModule):
    """Trains ``TrackNETv2`` on an event's bucket batches (one optimiser step per event) with
    Ariadne's loss; validation records the loss, the share of next hits inside their ellipse
    (``efficiency``) and the mean ellipse area."""
    monitor = ("val_loss", "min")
    logged = ("loss", "efficiency", "area")

    def terms(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        preds = [self.net(h, s) for h, s in zip(batch["hits"], batch["stations"])]
        pred = torch.cat([p.reshape(-1, 4) for p in preds])
        target = torch.cat([t.reshape(-1, 2) for t in batch["targets"]])
        return pred, target, tracknet_loss(pred, target, self.cfg.point_weight, self.cfg.area_weight)

    def training_step(self, batch: dict, batch_idx: int):
        loss = self.terms(batch)[2]
        self.log_train_loss(loss)
        return loss

    def validation_step(self, batch: dict, batch_idx: int):
        pred, target, loss = self.terms(batch)
        inside = (ellipse_distance(pred, target) <= 1.0).float().mean()
        self.record_validation({"loss": float(loss), "efficiency": float(inside),
                                "area": float((pred[:, 2] * pred[:, 3]).mean())})


@torch.no_grad()
def calibrated_radius(model: TrackNETModule, sequences, quantile: float) -> torch.Tensor:
    """The ``quantile`` of the validation next hits' distances from their ellipses' centres (in
    semi-axis units), for steps to another layer and steps within one layer (overlapping
    modules): the ellipse scales at which that share of each falls inside."""
    d, same = [], []
    for batch in sequences:
        d.append(ellipse_distance(*model.terms(batch)[:2]))
        same.append(torch.cat([m.reshape(-1) for m in batch["same_layer"]]))
    d, same = (torch.cat(d), torch.cat(same)) if d else (torch.ones(1), torch.zeros(1, dtype=torch.bool))
    radii = [torch.quantile(d[m].double(), quantile) if m.any() else torch.tensor(1.0, dtype=torch.double)
             for m in (~same, same)]
    return torch.stack(radii).clamp(min=1e-3)


def candidate_ranges(key: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, period: float | None):
    """For sorted ``key`` and per-query windows [lo, hi]: (query, position in ``key``) of every key
    inside its query's window; ``period``: the key is an angle (windows wrap around)."""
    n = key.numel()
    ext = torch.cat([key - period, key, key + period]) if period is not None else key
    start = torch.searchsorted(ext, lo)
    count = (torch.searchsorted(ext, hi, right=True) - start).clamp(min=0, max=n)
    query = torch.repeat_interleave(torch.arange(lo.numel()), count)
    offset = torch.arange(query.numel()) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return query, (start[query] + offset) % n


@register("tracknet")
class TrackNET(LightningStage, TrackBuilder):
    """Adds ``track_id`` per hit by following candidates station by station with TrackNETv2."""
    Config = TrackNETStageConfig
    needs_edge_scores = False
    weights_format: ClassVar[int] = 1

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.stations: dict[str, torch.Tensor] | None = None

    def build(self, in_dim: int) -> TrackNETModule:
        return TrackNETModule(TrackNETv2(HIT_FEATURES, STATION_FEATURES, self.config), None, self.config)

    def fit(self, train, val) -> dict:
        self.stations = build_stations(train, self.config.slices)
        prep = lambda event: training_sequences(event, self.stations, self.config)   # noqa: E731
        val_sequences = MappedEvents(val, prep)
        report = super().fit(MappedEvents(train, prep), val_sequences)
        self.stations["radius"] = calibrated_radius(self.model, val_sequences, self.config.inside_quantile)
        return {**report, "ellipse_radius": self.stations["radius"].tolist(), "stations": int(self.stations["layers"].numel()),
                "forward_steps": float(self.stations["forward_steps"]),
                "allowed_steps": int(self.stations["allowed"].sum())}

    def input_dim(self, train) -> int:
        return HIT_FEATURES

    def save(self, path):
        with atomic_path(path) as tmp:
            torch.save({"in_dim": HIT_FEATURES, "state": self.model.state_dict(), "stations": self.stations}, tmp)

    def load(self, path):
        blob = safe_load(path, "weights file")
        if not isinstance(blob, dict) or "stations" not in blob:
            raise ValueError("not a tracknet weights file")
        self._ensure_model(HIT_FEATURES).load_state_dict(blob["state"])
        self.model.to(self.device).eval()
        self.stations = blob["stations"]

    def export(self, event: Data):
        raise NotImplementedError("tracknet has no TorchScript export (no C++ port)")

    @torch.no_grad()
    def infer(self, event: Data) -> Data:
        labels = follow(self.model.net.cpu().eval(), event, self.stations, self.config)
        event.track_id = torch.as_tensor(drop_small(labels, self.config.min_hits), dtype=torch.long)
        return event


class _Candidates:
    """The open track candidates of a sweep: last hit, track id, GRU state and input window."""

    def __init__(self, net: TrackNETv2):
        self.last = self.tid = torch.zeros(0, dtype=torch.long)
        self.state, self.window = net.initial_state(0, HIT_FEATURES)

    def add(self, net: TrackNETv2, seeds: torch.Tensor, first_id: int, inputs: torch.Tensor) -> None:
        s0, w0 = net.step(*net.initial_state(seeds.numel(), HIT_FEATURES), inputs)
        self.last = torch.cat([self.last, seeds])
        self.tid = torch.cat([self.tid, first_id + torch.arange(seeds.numel())])
        self.state, self.window = torch.cat([self.state, s0]), torch.cat([self.window, w0])

    def keep(self, mask: torch.Tensor) -> None:
        self.last, self.tid = self.last[mask], self.tid[mask]
        self.state, self.window = self.state[mask], self.window[mask]


def extend(net: TrackNETv2, open_: _Candidates, eligible: torch.Tensor, hits: torch.Tensor, free: torch.Tensor,
           track: torch.Tensor, s: int, xyz: torch.Tensor, phi: torch.Tensor, stations: dict, cfg, radius: float) -> torch.Tensor:
    """Continue the ``eligible`` candidates onto the free ``hits`` of station ``s`` (sorted by φ on
    a barrel, by x on a plane) inside their ellipses, likeliest first; marks the hits taken in
    ``free``.  Returns the candidates extended."""
    barrel = bool(stations["barrel"][s])
    key = phi[hits] if barrel else xyz[hits, 0]
    base = xyz[open_.last[eligible]]
    st = torch.full((eligible.numel(),), s, dtype=torch.long)
    ell = net.ellipse(open_.state[eligible], station_inputs(st, base, stations, cfg.local_scale)).double()
    ell[:, 2:] *= radius
    # the ellipse's extent along the search key: φ on a barrel; x on a plane, where the local
    # frame is turned by φ of the last hit (the half-width: the longer semi-axis, to be safe)
    if barrel:
        scale = cfg.local_scale / stations["position"][s]
        centre = phi[open_.last[eligible]] + ell[:, 0] * scale
        half = (ell[:, 2] * scale).clamp(max=math.pi)
    else:
        p = torch.atan2(base[:, 1], base[:, 0])
        centre = base[:, 0] + (torch.cos(p) * ell[:, 0] - torch.sin(p) * ell[:, 1]) * cfg.local_scale
        half = torch.maximum(ell[:, 2], ell[:, 3]) * cfg.local_scale
    q, pos = candidate_ranges(key, centre - half, centre + half, 2 * math.pi if barrel else None)
    ok = free[pos]
    q, pos = q[ok], pos[ok]
    loc = local_coords(xyz[hits[pos]], base[q], torch.full_like(q, s), stations, cfg.local_scale)
    d = ellipse_distance(ell[q].float(), loc)
    inside = d <= 1.0
    q, pos, d = q[inside], pos[inside], d[inside]
    cost = 0.5 * d.double() ** 2 + torch.log(ell[q, 2] * ell[q, 3])
    take = torch.as_tensor(greedy_matching(q.numpy(), pos.numpy(), cost.numpy()))
    q, pos = q[take], pos[take]
    t = eligible[q]
    free[pos] = False
    track[hits[pos]] = open_.tid[t]
    open_.state[t], open_.window[t] = net.step(open_.state[t], open_.window[t],
                                               hit_inputs(xyz[hits[pos]], xyz[open_.last[t]], stations, cfg.local_scale))
    open_.last[t] = hits[pos]
    return t


def follow(net: TrackNETv2, event: Data, stations: dict, cfg: TrackNETStageConfig) -> np.ndarray:
    """Track id per hit (every hit in a known layer gets one; -1 for hits of layers the training
    never saw) by sweeping the stations' cells with ``net``'s ellipses, scaled by the calibrated
    radius times ``ellipse_scale``.  A cell is visited twice: a candidate that took a hit there may
    take a second one of the same layer (overlapping modules), where training saw such steps."""
    n = event.num_nodes
    xyz = positions(event)
    keys = module_key(event, "layer")
    layer = torch.searchsorted(stations["layers"], keys).clamp(max=stations["layers"].numel() - 1)
    known = stations["layers"][layer] == keys
    phi = torch.atan2(xyz[:, 1], xyz[:, 0])
    radius, radius_same = (float(x) * cfg.ellipse_scale for x in stations["radius"])
    track = torch.full((n,), -1, dtype=torch.long)
    open_ = _Candidates(net)
    n_tracks = 0
    rho = torch.hypot(event.r.double(), event.z.double())
    cell = sweep_cells(rho, layer, stations)
    todo = torch.nonzero(known).squeeze(1)
    todo = todo[torch.argsort(cell[todo], stable=True)]
    _, sizes = torch.unique_consecutive(cell[todo], return_counts=True)
    for hits in torch.split(todo, sizes.tolist()):
        s = int(layer[hits[0]])
        hits = hits[torch.argsort(phi[hits] if stations["barrel"][s] else xyz[hits, 0])]
        free = torch.ones(hits.numel(), dtype=torch.bool)
        # candidates past the gap close; a step within one layer comes only in the second pass
        open_.keep(rho[open_.last] >= rho[hits].min() - cfg.max_gap)
        from_layer = layer[open_.last]
        eligible = torch.nonzero(stations["allowed"][from_layer, s] & (from_layer != s)).squeeze(1)
        if eligible.numel():
            taken = extend(net, open_, eligible, hits, free, track, s, xyz, phi, stations, cfg, radius)
            if taken.numel() and bool(stations["allowed"][s, s]) and bool(free.any()):
                extend(net, open_, taken, hits, free, track, s, xyz, phi, stations, cfg, radius_same)
        # hits no candidate took start new candidates
        seeds = hits[free]
        track[seeds] = n_tracks + torch.arange(seeds.numel())
        open_.add(net, seeds, n_tracks, hit_inputs(xyz[seeds], None, stations, cfg.local_scale))
        n_tracks += seeds.numel()
    return track.numpy()
