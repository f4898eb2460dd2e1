"""Track labeling: edges and scores to a ``track_id`` per hit (-1 = unassigned).

Methods: connected components (SciPy on CPU, cuGraph on GPU when installed), CC after junction
removal (every hit keeps its best incoming and outgoing edge), CC + walkthrough for merged
components, and linear-sum-assignment labeling (each hit keeps at most one predecessor and one
successor).  Fragments of one helix may then be merged (``trkx.ops.merging``), and candidates
selected by hit count and by pT from their curvature."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from trkx.ops.assignment import assign_edges
from trkx.ops.merging import fragment_links
from trkx.ops.track_fit import helix_residuals
from trkx.stage import NoCppPort, TrackBuilder, register


def cugraph_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cugraph  # noqa: F401
        import cudf  # noqa: F401
    except ImportError:
        return False
    return True


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber components 0, 1, ... in order of their smallest node index (backend independent)."""
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    _, inv = np.unique(labels, return_inverse=True)
    return rank[inv]


def _components_scipy(edges: np.ndarray, n: int) -> np.ndarray:
    adj = coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(n, n))
    return connected_components(adj, directed=True, connection="weak")[1]


def _components_cugraph(edges: np.ndarray, n: int) -> np.ndarray:
    import cudf
    import cugraph

    df = cudf.DataFrame({"src": np.concatenate([edges[0], np.arange(n)]),
                         "dst": np.concatenate([edges[1], np.arange(n)])})  # self loops keep isolated hits
    g = cugraph.Graph(directed=False)
    g.from_cudf_edgelist(df, source="src", destination="dst", renumber=True)
    out = cugraph.connected_components(g).to_pandas()
    labels = np.empty(n, dtype=np.int64)
    labels[out["vertex"].to_numpy()] = out["labels"].to_numpy()
    return labels


def connected_component_labels(edge_index: torch.Tensor, n: int, backend: str = "auto") -> np.ndarray:
    """Component id per node (canonical numbering), SciPy or cuGraph."""
    edges = edge_index.cpu().numpy()
    if backend == "auto":
        backend = "cugraph" if cugraph_available() else "scipy"
    if backend == "cugraph":
        if not cugraph_available():
            raise RuntimeError("labeling: backend 'cugraph' needs a GPU and the cugraph package")
        labels = _components_cugraph(edges, n)
    else:
        labels = _components_scipy(edges, n)
    return canonical_labels(labels)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Track ids 0..K-1 in order of the old ids; -1 stays -1."""
    out = labels.copy()
    on = out >= 0
    if on.any():
        out[on] = np.unique(out[on], return_inverse=True)[1]
    return out


def drop_small(labels: np.ndarray, min_hits: int) -> np.ndarray:
    """Set components smaller than ``min_hits`` to -1 and renumber the rest 0..K-1 (hits already
    at -1 stay unassigned)."""
    sizes = np.bincount(np.maximum(labels, 0))
    return renumber(np.where((labels >= 0) & (sizes[np.maximum(labels, 0)] >= min_hits), labels, -1))


def best_successor_paths(edge_index: torch.Tensor, score: torch.Tensor, n: int) -> torch.Tensor:
    """Walkthrough, vectorised: every hit follows its highest-score outgoing edge; where several
    hits choose the same successor only the highest-score one keeps it.  Returns a mask of the
    edges kept; they form disjoint paths."""
    if edge_index.shape[1] == 0:
        return torch.zeros(0, dtype=torch.bool)
    src, dst = edge_index
    best_out = scatter(score, src, 0, dim_size=n, reduce="max")
    is_best = score >= best_out[src]
    # break exact ties towards the smallest edge position
    pos = torch.arange(src.numel())
    first = scatter(torch.where(is_best, pos, src.numel()), src, 0, dim_size=n, reduce="min")
    chosen = is_best & (pos == first[src])
    s_in = torch.where(chosen, score, torch.full_like(score, -1.0))
    best_in = scatter(s_in, dst, 0, dim_size=n, reduce="max")
    chosen &= s_in >= best_in[dst]
    first_in = scatter(torch.where(chosen, pos, src.numel()), dst, 0, dim_size=n, reduce="min")
    return chosen & (pos == first_in[dst])


def hits_by_track_and_radius(track_id: torch.Tensor, r: torch.Tensor, other: torch.Tensor):
    """The assigned hits' r and ``other`` (float64) sorted by track 0..K-1, then by radius, with
    each track's first position in that order and its number of hits."""
    on = track_id >= 0
    tid, rr, oo = track_id[on], r[on].double(), other[on].double()
    n_tracks = int(tid.max()) + 1 if tid.numel() else 0
    order = torch.argsort(tid * (rr.max() + 1) + rr) if tid.numel() else tid
    counts = torch.bincount(tid, minlength=n_tracks)
    return rr[order], oo[order], torch.cumsum(counts, 0) - counts, counts


def track_pt_estimate(track_id: torch.Tensor, r: torch.Tensor, phi: torch.Tensor, bfield_tesla: float) -> torch.Tensor:
    """Transverse momentum (GeV) of each track 0..K-1 from the circle through its innermost,
    middle and outermost hit in the transverse plane (all hits of a helix lie on one circle,
    whatever the number of turns); straight or degenerate tracks get +inf."""
    rr, pp, start, counts = hits_by_track_and_radius(track_id, r, phi)
    x, y = rr * torch.cos(pp), rr * torch.sin(pp)
    a, b, c = start, start + counts // 2, start + counts - 1
    ab = torch.hypot(x[b] - x[a], y[b] - y[a])
    bc = torch.hypot(x[c] - x[b], y[c] - y[b])
    ca = torch.hypot(x[a] - x[c], y[a] - y[c])
    cross = (x[b] - x[a]) * (y[c] - y[a]) - (y[b] - y[a]) * (x[c] - x[a])
    curvature = 2 * cross.abs() / (ab * bc * ca).clamp_min(1e-12)        # 1/mm
    radius_m = torch.where(curvature > 0, 1e-3 / curvature, torch.tensor(float("inf"), dtype=torch.float64))
    return (0.299792458 * bfield_tesla * radius_m).float()


def track_eta_estimate(track_id: torch.Tensor, r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Pseudorapidity of each track 0..K-1 from the (r, z) line through its innermost and outermost
    hit (insensitive to where along the beam line the particle was made); a track whose hits all
    lie at one radius gets +-inf."""
    rr, zz, first, counts = hits_by_track_and_radius(track_id, r, z)
    last = first + counts - 1
    dr, dz = rr[last] - rr[first], zz[last] - zz[first]
    cot = torch.where(dr > 0, dz / dr.clamp_min(1e-12), torch.sign(dz) * float("inf"))
    return torch.asinh(cot).float()


@dataclass
class ForwardHits:
    """Candidates at ``abs_eta`` or beyond need only ``min_hits`` hits: a forward particle
    crosses fewer layers before it leaves the detector (ITk's track selection asks fewer hits
    at larger |eta| in the same way)."""
    abs_eta: float
    min_hits: int


# fragment merging: at equal fit the nearer fragment is preferred (500 mm of gap weigh as much as
# chi2 = 1; chosen on the TrackML-like validation events, fake rate 0.0100 -> 0.0094)
MERGE_GAP_SCALE = 500.0


@dataclass
class LabelingConfig:
    method: Literal["cc", "junction", "walkthrough", "assignment"] = "cc"
    score_field: str | None = None   # per-edge score to read (default: the last edge classifier's)
    cut: float = 0.5                 # edges above this score are connected
    walk_cut: float = 0.1            # walkthrough follows edges above this score inside merged components
    min_hits: int = 3                # shorter candidates are left unassigned (-1)
    min_pt: float = 0.0              # GeV: candidates whose curvature says less are left unassigned
    # fewer hits asked of forward candidates (|eta| from their innermost and outermost hit)
    min_hits_eta: list[ForwardHits] = field(default_factory=list, metadata={"omit_default": True})
    bfield_tesla: float = 2.0        # solenoid field, for the pT estimate
    backend: Literal["auto", "scipy", "cugraph"] = "auto"
    assignment_mode: Literal["global", "layer_pairs"] = "global"
    assignment_solver: Literal["sparse", "dense"] = "sparse"
    # fragment merging (``trkx.ops.merging``): pieces of one helix that the edges left apart
    merge: bool = field(default=False, metadata={"omit_default": True})
    merge_min_hits: int = field(default=3, metadata={"omit_default": True})          # fragments this long take part
    merge_phi_window: float = field(default=0.1, metadata={"omit_default": True})    # rad, in phi0
    merge_cot_window: float = field(default=0.2, metadata={"omit_default": True})    # in dz/dr
    merge_tol_xy: float = field(default=2.0, metadata={"omit_default": True})        # mm, off the joint circle
    merge_tol_z: float = field(default=20.0, metadata={"omit_default": True})        # mm, off the joint (r, z) line
    merge_max_gap: float = field(default=1500.0, metadata={"omit_default": True})    # mm, between the fragments
    # helix-fit selection (``trkx.ops.track_fit``): candidates with a hit farther than this (mm)
    # from the circle through their innermost, middle and outermost hit, or from their line in
    # (arc length, z), are left unassigned (0 = no cut)
    max_off_circle: float = field(default=0.0, metadata={"omit_default": True})
    max_off_line: float = field(default=0.0, metadata={"omit_default": True})

    def validate(self) -> None:
        if not 0.0 <= self.cut <= 1.0 or not 0.0 <= self.walk_cut <= 1.0:
            raise ValueError("keys 'cut' and 'walk_cut' must lie in [0, 1]")
        if self.min_hits < 1:
            raise ValueError("key 'min_hits': must be >= 1")
        for i, fwd in enumerate(self.min_hits_eta):
            if not fwd.abs_eta >= 0 or fwd.min_hits < 1:
                raise ValueError(f"key 'min_hits_eta[{i}]': abs_eta must be >= 0 and min_hits >= 1")
        if self.merge_min_hits < 3:
            raise ValueError("key 'merge_min_hits': must be >= 3 (a circle needs three hits)")
        for key in ("merge_phi_window", "merge_cot_window", "merge_tol_xy", "merge_tol_z", "merge_max_gap"):
            if not getattr(self, key) > 0:
                raise ValueError(f"key '{key}': must be > 0")
        for key in ("max_off_circle", "max_off_line"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"key '{key}': must be >= 0 (0: no cut)")


@register("labeling")
class TrackLabeling(TrackBuilder):
    """Adds ``track_id`` per hit from the edges and their scores."""
    Config = LabelingConfig

    def bench_options(self) -> dict[str, list]:
        return {"backend": ["scipy", "cugraph"] if cugraph_available() else ["scipy"]}   # connected components

    def cpp_lines(self) -> list[str]:
        c = self.config
        if c.method == "assignment":
            raise NoCppPort("labeling method 'assignment' has no C++ port")
        if c.merge:
            raise NoCppPort("labeling with 'merge: true' (fragment merging) has no C++ port")
        if c.min_hits_eta:
            raise NoCppPort("labeling with 'min_hits_eta' (forward hit requirement) has no C++ port")
        if c.max_off_circle or c.max_off_line:
            raise NoCppPort("labeling with 'max_off_circle' / 'max_off_line' (helix-fit selection) has no C++ port")
        return [f"labeling {self.name} method {c.method} cut {c.cut!r} walk_cut {c.walk_cut!r} "
                f"min_hits {c.min_hits} min_pt {c.min_pt!r} bfield_tesla {c.bfield_tesla!r}"]

    def infer(self, event: Data) -> Data:
        cfg = self.config
        n = event.num_nodes
        ei = event.edge_index
        if cfg.score_field is None:
            raise ValueError(f"{self.name}: no 'score_field' set, and no edge classifier before it to read")
        if ei.shape[1] and cfg.score_field not in event:
            raise ValueError(f"{self.name}: event has no edge field {cfg.score_field!r}")
        score = event[cfg.score_field] if ei.shape[1] else torch.zeros(0)
        if cfg.method == "cc":
            labels = connected_component_labels(ei[:, score > cfg.cut], n, cfg.backend)
        elif cfg.method == "junction":
            # junction removal: at every hit only the best incoming and best outgoing edge above
            # the cut survive, so components are simple paths
            strong = score > cfg.cut
            keep = best_successor_paths(ei[:, strong], score[strong], n)
            labels = connected_component_labels(ei[:, strong][:, keep], n, cfg.backend)
        elif cfg.method == "walkthrough":
            labels = self._cc_and_walk(ei, score, n)
        else:
            labels = connected_component_labels(ei[:, self.edge_choice(event, score)], n, cfg.backend)
        if cfg.merge:
            labels = self._merge(labels, event)
        labels = self._select_by_hits(labels, event)
        if cfg.min_pt > 0 and labels.max(initial=-1) >= 0:
            # track selection, like the CKF's pT cut: soft loopers come out in many short arcs
            pt = track_pt_estimate(torch.as_tensor(labels), event.r, event.phi, cfg.bfield_tesla).numpy()
            labels = renumber(np.where((labels >= 0) & (pt[np.maximum(labels, 0)] >= cfg.min_pt), labels, -1))
        if (cfg.max_off_circle or cfg.max_off_line) and labels.max(initial=-1) >= 0:
            labels = self._select_by_fit(labels, event)
        event.track_id = torch.as_tensor(labels, dtype=torch.long)
        return event

    def _select_by_hits(self, labels: np.ndarray, event: Data) -> np.ndarray:
        """Candidates shorter than ``min_hits`` (or than their |eta| range's ``min_hits_eta``) are
        left unassigned; the rest are renumbered 0..K-1."""
        cfg = self.config
        fewest = min([cfg.min_hits] + [f.min_hits for f in cfg.min_hits_eta])
        labels = drop_small(labels, fewest)
        if not cfg.min_hits_eta or labels.max(initial=-1) < 0:
            return labels
        eta = track_eta_estimate(torch.as_tensor(labels), event.r, event.z).abs().numpy()
        needed = np.full(eta.size, cfg.min_hits)
        for fwd in sorted(cfg.min_hits_eta, key=lambda f: f.abs_eta):    # a few ranges, not per hit
            needed = np.where(eta >= fwd.abs_eta, fwd.min_hits, needed)
        sizes = np.bincount(labels[labels >= 0], minlength=eta.size)
        keep = sizes >= needed
        return renumber(np.where((labels >= 0) & keep[np.maximum(labels, 0)], labels, -1))

    def _select_by_fit(self, labels: np.ndarray, event: Data) -> np.ndarray:
        """Candidates farther from one helix than ``max_off_circle`` / ``max_off_line`` are left
        unassigned (a candidate that switched particles part way); the rest are renumbered."""
        cfg = self.config
        tracks, off_circle, off_line = helix_residuals(labels, event.r, event.phi, event.z)
        bad = np.zeros(tracks.size, dtype=bool)
        if cfg.max_off_circle:
            bad |= off_circle > cfg.max_off_circle
        if cfg.max_off_line:
            bad |= off_line > cfg.max_off_line
        return renumber(np.where(np.isin(labels, tracks[bad]), -1, labels))

    @property
    def decides_edges(self) -> bool:
        """Whether the method keeps or drops each edge (the assignment), so ``edge_choice``
        applies; cc, junction and walkthrough decide per track."""
        return self.config.method == "assignment"

    def edge_choice(self, event: Data, score: torch.Tensor) -> torch.Tensor:
        """The edges the assignment keeps from ``score`` (boolean per edge)."""
        cfg = self.config
        ei, groups = event.edge_index, None
        if cfg.assignment_mode == "layer_pairs":    # one assignment per pair of layers
            layer = event.volume_id * 10000 + event.layer_id
            _, layer = torch.unique(layer, return_inverse=True)
            n_layers = int(layer.max()) + 1 if layer.numel() else 1
            groups = layer[ei[0]] * n_layers + layer[ei[1]]
        return assign_edges(ei, score, cfg.cut, cfg.assignment_solver, groups)

    def _merge(self, labels: np.ndarray, event: Data) -> np.ndarray:
        """Fragments linked by ``fragment_links`` share one label; each keeps at most one
        successor and one predecessor, the best fit (``best_successor_paths``).  ``labels`` are
        all >= 0 (components before the hit-count cut)."""
        cfg = self.config
        frags, links, chi2, gap = fragment_links(
            labels, event.r, event.phi, event.z, min_hits=cfg.merge_min_hits, phi_window=cfg.merge_phi_window,
            cot_window=cfg.merge_cot_window, tol_xy=cfg.merge_tol_xy, tol_z=cfg.merge_tol_z,
            max_gap=cfg.merge_max_gap)
        if links.shape[1] == 0:
            return labels
        links = torch.as_tensor(links)
        chosen = best_successor_paths(links, torch.as_tensor(1.0 / (1.0 + chi2 + gap / MERGE_GAP_SCALE)), frags.size)
        joined = connected_component_labels(links[:, chosen], frags.size, "scipy")
        pos = np.searchsorted(frags, labels)
        is_fragment = (labels >= 0) & (frags[np.minimum(pos, frags.size - 1)] == labels)
        out = labels.copy()
        out[is_fragment] = labels.max() + 1 + joined[pos[is_fragment]]
        return canonical_labels(out)

    def _cc_and_walk(self, ei: torch.Tensor, score: torch.Tensor, n: int) -> np.ndarray:
        """Components that are simple paths are tracks; merged ones are resolved by the walkthrough."""
        cfg = self.config
        strong = ei[:, score > cfg.cut]
        labels = connected_component_labels(strong, n, cfg.backend)
        deg_out = np.bincount(strong[0].numpy(), minlength=n)
        deg_in = np.bincount(strong[1].numpy(), minlength=n)
        branching = np.zeros(labels.max() + 1 if n else 0, dtype=bool)
        np.logical_or.at(branching, labels, (deg_out > 1) | (deg_in > 1))
        merged = branching[labels]
        if not merged.any():
            return labels
        m = torch.as_tensor(merged)
        inside = m[ei[0]] & m[ei[1]] & (score > cfg.walk_cut)
        sub = ei[:, inside]
        keep = best_successor_paths(sub, score[inside], n)
        walk = connected_component_labels(sub[:, keep], n, cfg.backend)
        out = labels.copy()
        out[merged] = walk[merged] + labels.max() + 1
        return canonical_labels(out)
