"""Adjacent-layer graph construction for layered detectors whose planes stand across the beam
(proton CT's tracking calorimeter; ``layer_id`` numbers the planes front to back, whatever the
volume): every hit of layer l is joined to every hit of layer l + 1
whose segment makes an angle with the beam axis (z) below the layer pair's cut.  The cuts are
taken from the training events' truth, as Kortus et al. take their edge filter from their
training set: per layer pair the ``quantile`` of the true segments' angles, times 1 + ``margin``.
Edges point downstream (layer l to l + 1), so each hit has at most one true successor and one
true predecessor: the per-layer-pair assignment picks from them directly.  The edge classifier
reads this hit graph as it is, or as its line graph (``gnn`` with ``architecture: line_graph``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from trkx.event import edge_truth, group_products, hit_xy
from trkx.stage import GraphConstructor, TrainableStage, register
from trkx.storage import atomic_path, safe_load


@dataclass
class LayerPairsConfig:
    quantile: float = 0.999       # of the true segments' angles per layer pair
    margin: float = 0.1           # cut = quantile × (1 + margin)
    min_samples: int = 20         # layer pairs with fewer true segments take the widest cut

    def validate(self) -> None:
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError("key 'quantile': must lie in (0, 1]")
        if self.margin < 0 or self.min_samples < 1:
            raise ValueError("keys 'margin' >= 0 and 'min_samples' >= 1 required")


def segment_angle(event: Data, edges: torch.Tensor) -> torch.Tensor:
    """Angle (rad) between each edge's segment and the beam axis z."""
    x, y = hit_xy(event)
    src, dst = edges
    return torch.atan2(torch.hypot(x[dst] - x[src], y[dst] - y[src]), (event.z[dst] - event.z[src]).abs())


def adjacent_layer_pairs(layer: torch.Tensor) -> torch.Tensor:
    """Every (hit of layer l, hit of layer l + 1) pair, (2, Σ n_l n_{l+1}), vectorised."""
    order = torch.argsort(layer, stable=True)
    n_layers = int(layer.max()) + 1 if layer.numel() else 0
    counts = torch.bincount(layer, minlength=n_layers)
    start = torch.cumsum(counts, 0) - counts
    if n_layers < 2:
        return torch.zeros(2, 0, dtype=torch.long)
    pair, i, j = group_products(counts[:-1], counts[1:])
    return torch.stack([order[start[pair] + i], order[start[pair + 1] + j]])


@register("layer_pairs")
class LayerPairs(TrainableStage, GraphConstructor):
    """Adds ``edge_index`` (layer l → l + 1, angle cut per layer pair) and truth ``y``."""
    Config = LayerPairsConfig

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.cuts: torch.Tensor | None = None    # rad, per layer pair (l, l + 1)

    def fit(self, train, val) -> dict:
        c = self.config
        angles, pairs = [], []
        for event in train:
            layer = event.layer_id
            edges = adjacent_layer_pairs(layer)
            true = edge_truth(event, edges)
            angles.append(segment_angle(event, edges[:, true]))
            pairs.append(layer[edges[0, true]])
        angles, pairs = torch.cat(angles).double(), torch.cat(pairs)
        if angles.numel() == 0:
            raise ValueError(f"{self.name}: the training events have no hit pairs of one particle in adjacent layers")
        n_pairs = int(pairs.max()) + 1
        cuts = torch.full((n_pairs,), float("nan"), dtype=torch.float64)
        for k in range(n_pairs):          # tens of layer pairs
            a = angles[pairs == k]
            if a.numel() >= c.min_samples:
                cuts[k] = torch.quantile(a, c.quantile)
        measured = cuts[~cuts.isnan()]
        widest = measured.max() if measured.numel() else torch.quantile(angles, c.quantile)
        self.cuts = (torch.where(cuts.isnan(), widest, cuts) * (1 + c.margin)).float()
        found = total = 0
        for event in val:
            out = self.infer(event.clone())
            found += int(out.y.sum())
            total += int(edge_truth(event, adjacent_layer_pairs(event.layer_id)).sum())
        return {"layer_pairs": n_pairs, "cut_min_mrad": float(self.cuts.min() * 1e3),
                "cut_max_mrad": float(self.cuts.max() * 1e3),
                "val_truth_edge_efficiency": found / total if total else float("nan")}

    def save(self, path):
        with atomic_path(path) as tmp:
            torch.save({"cuts": self.cuts}, tmp)

    def load(self, path):
        blob = safe_load(path, "layer-pair cut table")
        if set(blob) != {"cuts"}:
            raise ValueError("not a layer-pair cut table")
        self.cuts = blob["cuts"]

    def infer(self, event: Data) -> Data:
        layer = event.layer_id
        edges = adjacent_layer_pairs(layer)
        pair = layer[edges[0]].clamp_max(self.cuts.numel() - 1)    # deeper than in training: the last cut
        keep = segment_angle(event, edges) <= self.cuts[pair]
        event.edge_index = edges[:, keep]
        event.y = edge_truth(event, event.edge_index)
        return event
