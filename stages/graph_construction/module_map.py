"""Module-map graph construction (GNN4ITk's production method).

Training reads the truth of the training events: every pair of consecutive hits of one particle
connects two detector modules.  The map keeps each such (inner module, outer module) pair with a
window per geometric doublet quantity (the ``edge_features``: Δr, Δφ, Δz, Δη, φ slope, z0): the
min and max seen in training for that module pair (``windows: module``) or for its two layers
(``windows: layer``), padded by ``margin`` times the layer pair's window.  At inference every hit pair of two modules
the map connects is a candidate; those inside every window of their module pair become edges.
The map is the stage's trained state: saved, fingerprinted and cached like weights.

With ``triplets.enabled`` the map also learns windows per triplet of layers on how two consecutive
segments of a track bend (``trkx.ops.triplets``), and keeps only the doublet edges that continue
into such a triplet: at TrackML density a third of the edges, for a few tenths of a percent of the
target edges."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch_geometric.data import Data

from trkx.event import (DZ_SCALE, EDGE_FEATURES, edge_features, edge_features_from, edge_truth, orient_and_dedup,
                        outward, unique_outward_edges)
from trkx.ops.triplets import (build_triplet_windows, consecutive_pairs, segment_directions, triplet_features,
                               triplet_keep, triplet_tables)
from trkx.stage import GraphConstructor, TrainableStage, register
from trkx.storage import atomic_path, safe_load

_BITS = 21   # bits per volume / layer / module id in the packed module key
DETA = EDGE_FEATURES.index("deta")
DPHI = EDGE_FEATURES.index("dphi")


def module_key(event: Data, granularity: str = "module") -> torch.Tensor:
    """One int64 per hit naming its module, (volume_id, layer_id, module_id) packed, or with
    ``granularity='layer'`` its layer (module_id left out)."""
    key = (event.volume_id << (2 * _BITS)) | (event.layer_id << _BITS)
    return key | event.module_id if granularity == "module" else key


@dataclass
class TripletConfig:
    enabled: bool = False
    quantile: float = 0.001       # each window spans this quantile to 1 - quantile of its truth triplets ...
    margin: float = 0.1           # ... padded on each side by this fraction of its width

    def validate(self) -> None:
        if not 0.0 <= self.quantile < 0.5:
            raise ValueError("key 'triplets.quantile': must be in [0, 0.5)")
        if self.margin < 0:
            raise ValueError("key 'triplets.margin': must be >= 0")


@dataclass
class ModuleMapConfig:
    granularity: Literal["module", "layer"] = "module"   # what the map connects
    windows: Literal["module", "layer"] = "module"
    pt_min: float = 0.0           # GeV: particles below this pT do not enter the map
    min_hits: int = 3             # ... nor particles with fewer hits
    margin: float = 0.05          # windows padded on each side by this fraction of the layer pair's window
    # per feature, added to every window's width (edge-feature units)
    min_width: list[float] = field(default_factory=lambda: [0.0] * len(EDGE_FEATURES))
    max_candidates: int = 4_000_000   # candidate pairs scored per chunk (bounds memory)
    # keep only the edges that continue into a triplet inside learned windows (off: doublets only)
    triplets: TripletConfig = field(default_factory=TripletConfig, metadata={"omit_default": True})

    def validate(self) -> None:
        if self.margin < 0:
            raise ValueError("key 'margin': must be >= 0")
        if len(self.min_width) != len(EDGE_FEATURES):
            raise ValueError(f"key 'min_width': need {len(EDGE_FEATURES)} values ({', '.join(EDGE_FEATURES)})")
        if self.max_candidates < 1:
            raise ValueError("key 'max_candidates': must be >= 1")


def map_truth_edges(event: Data, pt_min: float, min_hits: int) -> torch.Tensor:
    """The truth track edges that build the map, oriented outwards (as the graph's edges are)."""
    tt = event.track_edges
    pid = event.particle_id
    inv = torch.unique(pid, return_inverse=True)[1]
    hits_of = torch.bincount(inv)[inv]
    ok = (event.pt[tt[0]] >= pt_min) & (hits_of[tt[0]] >= min_hits)
    return outward(event, tt[:, ok])


def build_module_map(events, cfg: ModuleMapConfig) -> dict[str, torch.Tensor]:
    """Module pairs and their feature windows from the truth edges of ``events``."""
    pairs, feats = [], []
    for event in events:
        edges = map_truth_edges(event, cfg.pt_min, cfg.min_hits)
        mk = module_key(event, cfg.granularity)
        pairs.append(torch.stack([mk[edges[0]], mk[edges[1]]], dim=1))
        feats.append(edge_features(event, edges))
    pairs, feats = torch.cat(pairs), torch.cat(feats)
    keys, inv, counts = torch.unique(pairs, dim=0, return_inverse=True, return_counts=True)
    lo, hi = _windows(inv, len(keys), feats)
    # A module pair sees few training edges, so its min/max under-estimates the spread; pad it by
    # a fraction of its layer pair's window, which pools every module pair of the two layers.
    layer_of = keys & ~((1 << _BITS) - 1)
    layer_pairs, layer_inv = torch.unique(layer_of, dim=0, return_inverse=True)
    llo, lhi = _windows(layer_inv[inv], len(layer_pairs), feats)
    pad = cfg.margin * (lhi - llo)[layer_inv] + torch.tensor(cfg.min_width) / 2
    if cfg.windows == "layer":
        lo, hi = llo[layer_inv], lhi[layer_inv]
    return {"modules": keys, "lo": lo - pad, "hi": hi + pad, "count": counts}


def build_triplet_map(events, cfg: ModuleMapConfig) -> dict[str, torch.Tensor]:
    """Triplet windows per layer triplet from the consecutive truth edges of the map's particles."""
    keys, feats = [], []
    for event in events:
        edges = map_truth_edges(event, cfg.pt_min, cfg.min_hits)
        first, second = consecutive_pairs(edges, event.num_nodes)
        layer = module_key(event, "layer")
        keys.append(torch.stack([layer[edges[0, first]], layer[edges[1, first]], layer[edges[1, second]]], dim=1))
        psi, cot = segment_directions(edges, event.r, event.phi, event.z)
        feats.append(triplet_features(psi, cot, first, second))
    windows = build_triplet_windows(torch.cat(keys), torch.cat(feats), cfg.triplets.quantile, cfg.triplets.margin)
    return {f"triplet_{k}": v for k, v in windows.items()}


def _triplet_filter(edges: torch.Tensor, event: Data, tables: dict[str, torch.Tensor]) -> torch.Tensor:
    """The (outward, unique) edges that lie in a triplet inside the map's triplet windows."""
    keep = triplet_keep(edges, module_key(event, "layer"), event.r, event.phi, event.z, **tables)
    return edges[:, keep]


def _triplet_tables(mmap: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if "triplet_layers" not in mmap:
        return None
    return triplet_tables({k: mmap[f"triplet_{k}"] for k in ("layers", "triplets", "lo", "hi")})


def _windows(group: torch.Tensor, n_groups: int, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group min and max of each feature column."""
    idx = group[:, None].expand(-1, feats.shape[1])
    lo = torch.full((n_groups, feats.shape[1]), float("inf")).scatter_reduce(0, idx, feats, "amin")
    hi = torch.full((n_groups, feats.shape[1]), float("-inf")).scatter_reduce(0, idx, feats, "amax")
    return lo, hi


def _expand(start: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges [start, start + count): each item's range and its position (start + offset),
    from one ``repeat_interleave`` (the positions of a range are consecutive)."""
    group = torch.repeat_interleave(count)
    shift = start - (torch.cumsum(count, 0) - count)
    return group, shift[group] + torch.arange(group.numel())


def map_edges(mk: torch.Tensor, r: torch.Tensor, phi: torch.Tensor, z: torch.Tensor, modules: torch.Tensor,
              lo: torch.Tensor, hi: torch.Tensor, max_candidates: int, deta_index: int = DETA,
              dz_scale: float = DZ_SCALE, dphi_index: int = DPHI) -> torch.Tensor:
    """Directed edges (inner, outer) of every hit pair that a map entry (``modules``: (inner key,
    outer key) per entry) connects and whose doublet features lie inside that entry's windows
    [lo, hi]; ``mk``: each hit's module key.  TorchScript-able (exported for C++).

    The hits are sorted by module and, inside a module, by φ: for each hit of an entry's inner
    module, only the outer module's hits inside the entry's Δφ window are candidates (two binary
    searches; a window across φ = ±π is searched as two ranges).  Compared with every hit pair of
    the two modules, this scores a few times fewer candidates in dense events, with the same edges."""
    if mk.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    uniq, rank = torch.unique(mk, return_inverse=True)
    # key = module rank + φ as a fraction of the turn: sorted by module, then φ
    frac = ((phi.double() + math.pi) / (2 * math.pi)).clamp(0.0, 1.0 - 1e-12)
    key = rank.double() + frac
    order = torch.argsort(key)
    skey = key[order]
    # where each module's hits begin and end in the sorted order
    module_start = torch.searchsorted(skey, torch.arange(uniq.numel() + 1, dtype=torch.float64))
    pos_a = torch.searchsorted(uniq, modules[:, 0].contiguous()).clamp(max=uniq.numel() - 1)
    pos_b = torch.searchsorted(uniq, modules[:, 1].contiguous()).clamp(max=uniq.numel() - 1)
    live = torch.nonzero((uniq[pos_a] == modules[:, 0]) & (uniq[pos_b] == modules[:, 1])).squeeze(1)
    a, b = pos_a[live], pos_b[live]
    # one row per (entry, inner hit)
    row_entry, at = _expand(module_start[a], module_start[a + 1] - module_start[a])
    src = order[at]
    entry = live[row_entry]
    rb = b[row_entry]
    rb_f = rb.double()
    # window columns as contiguous vectors (a gather per column, not a 2-D gather)
    lo_cols, hi_cols = lo.t().contiguous(), hi.t().contiguous()
    # the Δφ window as fractions of the turn, shifted so that its low end lies in [0, 1)
    eps = 1e-6     # rad: float32 φ rounding; the exact window test below decides
    phi_src = phi[src].double()
    f_lo = (phi_src + lo_cols[dphi_index][entry].double() / 10.0 - eps + math.pi) / (2 * math.pi)
    f_hi = (phi_src + hi_cols[dphi_index][entry].double() / 10.0 + eps + math.pi) / (2 * math.pi)
    turn = torch.floor(f_lo)
    f_lo, f_hi = f_lo - turn, torch.minimum(f_hi - turn, f_lo - turn + 1.0)
    b_end = module_start[rb + 1]
    s1 = torch.searchsorted(skey, rb_f + f_lo)
    e1 = torch.searchsorted(skey, rb_f + f_hi.clamp(max=1.0 - 1e-12), right=True)
    e1 = torch.where(f_hi >= 1.0, b_end, e1)
    # the part of a window beyond φ = +π continues at φ = -π (searched only where there is one)
    wraps = torch.nonzero(f_hi > 1.0).squeeze(1)
    s2 = module_start[rb[wraps]]
    e2 = torch.searchsorted(skey, rb_f[wraps] + (f_hi[wraps] - 1.0), right=True)
    e2 = torch.minimum(e2, s1[wraps])
    starts = torch.cat([s1, s2])
    counts = torch.cat([e1 - s1, e2 - s2]).clamp(min=0)
    rows = torch.cat([torch.arange(src.numel()), wraps])
    keep = counts > 0
    starts, counts, rows = starts[keep], counts[keep], rows[keep]
    eta = torch.asinh(z / r.clamp_min(1e-6))        # as in edge_features_from
    deta_lo, deta_hi = lo_cols[deta_index], hi_cols[deta_index]
    out: list[torch.Tensor] = []
    # chunks of rows holding about max_candidates candidate pairs
    chunk = torch.div(torch.cumsum(counts, 0) - counts, max_candidates, rounding_mode="floor")
    sizes: list[int] = torch.bincount(chunk).tolist() if counts.numel() > 0 else []
    begin = 0
    for size in sizes:
        if size == 0:
            continue
        group, at = _expand(starts[begin:begin + size], counts[begin:begin + size])
        row = rows[begin:begin + size][group]
        s, d = src[row], order[at]
        e = entry[row]
        begin += size
        # the Δη window first (two gathers per candidate, computed exactly as edge_features_from
        # does, so it drops nothing the full test would keep): at TrackML density a third of the
        # candidates pass it; then every window on the survivors
        deta = (eta[d] - eta[s]) * 10.0
        pre = torch.nonzero((deta >= deta_lo[e]) & (deta <= deta_hi[e]) & (s != d)).squeeze(1)
        cand, e = torch.stack([s[pre], d[pre]]), e[pre]
        f = edge_features_from(r, phi, z, cand)
        inside = torch.ones(e.numel(), dtype=torch.bool)
        for j in range(f.shape[1]):
            inside &= (f[:, j] >= lo_cols[j][e]) & (f[:, j] <= hi_cols[j][e])
        out.append(cand[:, inside])
    return torch.cat(out, dim=1) if len(out) > 0 else torch.zeros(2, 0, dtype=torch.long)


def module_map_edges(event: Data, mmap: dict[str, torch.Tensor], max_candidates: int,
                     granularity: str = "module") -> torch.Tensor:
    """``map_edges`` of an event with a built map."""
    return map_edges(module_key(event, granularity), event.r, event.phi, event.z, mmap["modules"], mmap["lo"],
                     mmap["hi"], max_candidates)


class ModuleMapGraph(nn.Module):
    """The module map's inference as a module holding the map (exported to TorchScript for C++):
    (volume_id, layer_id, module_id, r, phi, z) per hit -> directed candidate edges (with
    triplet windows: outward, unique, and only those in a triplet inside the windows)."""

    def __init__(self, mmap: dict[str, torch.Tensor], max_candidates: int, granularity: str):
        super().__init__()
        self.register_buffer("module_pairs", mmap["modules"])
        self.register_buffer("lo", mmap["lo"])
        self.register_buffer("hi", mmap["hi"])
        tables = _triplet_tables(mmap)
        self.triplets = tables is not None
        empty = {"layers": torch.zeros(0, dtype=torch.long), "table": torch.zeros(0, dtype=torch.int32),
                 "lo": torch.zeros(0, 2), "hi": torch.zeros(0, 2), "search_lo": torch.zeros(0),
                 "search_hi": torch.zeros(0)}
        for k, v in (tables or empty).items():
            self.register_buffer(f"triplet_{k}", v)
        self.max_candidates, self.per_module, self.bits = max_candidates, granularity == "module", _BITS

    def forward(self, volume_id: torch.Tensor, layer_id: torch.Tensor, module_id: torch.Tensor,
                r: torch.Tensor, phi: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        layer = (volume_id << (2 * self.bits)) | (layer_id << self.bits)
        key = layer | module_id if self.per_module else layer
        edges = map_edges(key, r, phi, z, self.module_pairs, self.lo, self.hi, self.max_candidates)
        if self.triplets:
            edges = unique_outward_edges(edges, r, z, r.numel())
            keep = triplet_keep(edges, layer, r, phi, z, self.triplet_layers, self.triplet_table, self.triplet_lo,
                                self.triplet_hi, self.triplet_search_lo, self.triplet_search_hi)
            edges = edges[:, keep]
        return edges


@register("module_map")
class ModuleMap(TrainableStage, GraphConstructor):
    """Adds ``edge_index`` (outward, unique) and truth ``y`` from the module map of the training events."""
    Config = ModuleMapConfig
    weights_format = 1

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.map: dict[str, torch.Tensor] | None = None
        self._tables: dict[str, torch.Tensor] | None = None

    def fit(self, train, val) -> dict:
        self.map = build_module_map(train, self.config)
        if self.config.triplets.enabled:
            self.map.update(build_triplet_map(train, self.config))
        self._tables = _triplet_tables(self.map)
        # how much of the validation truth the map can reach at all (the map's own particles)
        from trkx.metrics.edges import edge_counts
        counts = [edge_counts(self.infer(event.clone()), None, self.config.pt_min, self.config.min_hits) for event in val]
        found, total = sum(c["target_found"] for c in counts), sum(c["target_truth"] for c in counts)
        return {"module_pairs": int(len(self.map["modules"])), "train_events": len(train),
                "layer_triplets": int(len(self.map.get("triplet_triplets", []))),
                "val_truth_edge_efficiency": found / total if total else float("nan")}

    def save(self, path):
        with atomic_path(path) as tmp:
            torch.save(self.map, tmp)

    def load(self, path):
        blob = safe_load(path, "module map")
        triplet = {"triplet_layers", "triplet_triplets", "triplet_lo", "triplet_hi"}
        if set(blob) not in ({"modules", "lo", "hi", "count"}, {"modules", "lo", "hi", "count"} | triplet):
            raise ValueError("not a module map")
        if self.config.triplets.enabled != ("triplet_layers" in blob):
            raise ValueError("the module map's triplet windows do not match the config's 'triplets.enabled'")
        self.map = blob
        self._tables = _triplet_tables(blob)

    def cpp_lines(self) -> list[str]:
        return [f"module_map {self.name} torchscript/{self.name}.pt"]

    def export(self, event: Data | None = None) -> torch.jit.ScriptModule:
        """The map's inference as TorchScript (``ModuleMapGraph``), for C++."""
        return torch.jit.script(ModuleMapGraph(self.map, self.config.max_candidates, self.config.granularity))

    def infer(self, event: Data) -> Data:
        edges = module_map_edges(event, self.map, self.config.max_candidates, self.config.granularity)
        edges = orient_and_dedup(event, edges)
        event.edge_index = edges if self._tables is None else _triplet_filter(edges, event, self._tables)
        event.y = edge_truth(event, event.edge_index)
        return event
