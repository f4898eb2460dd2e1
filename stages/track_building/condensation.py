"""One-shot track building: clustering-space outputs to track labels, and the stage base that
object condensation and influencer condensation share (a per-hit GNN, sector training, the track
parameters of each track's representative hit)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from trkx.event import EDGE_FEATURES, edge_features, select_edges
from trkx.losses import object_index, objects_of, track_parameter_loss
from trkx.models import CondensationConfig, CondensationGNN, split_outputs
from trkx.ops.frnn import build_edges
from trkx.stage import TrackBuilder
from trkx.training import CondensationModule, LightningStage, SampledTrainingConfig, autocast_context


def condensation_tracks(x: torch.Tensor, beta: torch.Tensor, t_beta: float, t_d: float) -> tuple[np.ndarray, np.ndarray]:
    """Object condensation's inference: hits with β > ``t_beta``, in decreasing β, become
    condensation points unless a stronger one lies within ``t_d``; every hit within ``t_d`` of a
    condensation point joins the strongest such one.  Returns (label per hit, -1 for none; the
    representative hit of each label)."""
    n = x.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    cand = torch.nonzero(beta > t_beta).squeeze(1)
    if cand.numel() == 0:
        return labels, np.zeros(0, dtype=np.int64)
    cand = cand[torch.argsort(beta[cand], descending=True, stable=True)]
    # candidate pairs within t_d (the candidates' own radius graph), as CSR over candidate rank
    ei = build_edges(x[cand].float(), t_d, None).numpy()
    rows = np.bincount(ei[0], minlength=cand.numel())
    start = np.concatenate([[0], np.cumsum(rows)])
    suppressed = np.zeros(cand.numel(), dtype=bool)
    for c in range(cand.numel()):          # non-maximum suppression: one pass over the candidates
        if not suppressed[c]:
            nb = ei[1, start[c]:start[c + 1]]
            suppressed[nb[nb > c]] = True
    points = cand[torch.as_tensor(~suppressed)]
    # every hit to the strongest condensation point within t_d
    pairs = build_edges(torch.cat([x[points], x]).float(), t_d, None)
    k = points.numel()
    pairs = pairs[:, (pairs[0] < k) & (pairs[1] >= k)]
    rank = pairs[0].numpy()
    hit = pairs[1].numpy() - k
    order = np.lexsort((rank, hit))        # by hit, then condensation point rank (= β order)
    hit, rank = hit[order], rank[order]
    first = np.concatenate([[True], hit[1:] != hit[:-1]]) if hit.size else np.zeros(0, dtype=bool)
    labels[hit[first]] = rank[first]
    labels[points.numpy()] = np.arange(k)      # a condensation point belongs to itself
    return labels, points.numpy()


def density_tracks(x: torch.Tensor, beta: torch.Tensor, method: str, eps: float,
                   min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """DBSCAN or HDBSCAN (scikit-learn's) in the clustering space; each cluster is represented by
    its hit of highest β."""
    from sklearn.cluster import DBSCAN, HDBSCAN
    pts = x.detach().cpu().double().numpy()
    if method == "dbscan":
        labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(pts)
    else:
        labels = HDBSCAN(min_cluster_size=max(min_samples, 2), cluster_selection_epsilon=eps).fit_predict(pts)
    labels = labels.astype(np.int64)
    on = np.flatnonzero(labels >= 0)
    order = on[np.lexsort((-beta.detach().cpu().numpy()[on], labels[on]))]
    first = np.concatenate([[True], labels[order][1:] != labels[order][:-1]]) if order.size else order.astype(bool)
    return labels, order[first]


def influencer_tracks(user: torch.Tensor, influencer: torch.Tensor, radius: float,
                      merge_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Influencer inference: the influencer neighbourhoods of ``radius`` around every influencer
    embedding; every non-empty one is a track candidate, and a hit claimed by several influencers
    goes to the nearest.  That is each user's nearest influencer within ``radius`` (a kd-tree
    query).  With ``merge_radius`` > 0, candidates whose influencers lie within it of each other
    are one track (connected components): a track whose users gathered around several of its
    influencers is not split into duplicates.  Returns (label per hit, the influencer hit of each
    label; the first influencer of a merged track)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    u = user.detach().cpu().double().numpy()
    infl = influencer.detach().cpu().double().numpy()
    dist, nearest = cKDTree(infl).query(u, k=1, distance_upper_bound=radius)
    labels = np.full(len(u), -1, dtype=np.int64)
    claimed = np.isfinite(dist)
    influencers, labels[claimed] = np.unique(nearest[claimed], return_inverse=True)
    if merge_radius > 0 and influencers.size > 1:
        pairs = cKDTree(infl[influencers]).query_pairs(merge_radius, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(influencers.size,) * 2)
        component = connected_components(graph, directed=False)[1]
        first = np.unique(component, return_index=True)[1]       # components are numbered by first member
        labels = np.where(labels >= 0, component[np.maximum(labels, 0)], -1)
        influencers = influencers[first]
    return labels, influencers.astype(np.int64)


def keep_tracks(labels: np.ndarray, representative: np.ndarray, min_hits: int) -> tuple[np.ndarray, np.ndarray]:
    """Tracks with at least ``min_hits`` hits, renumbered 0..K-1 (in label order), with their
    representatives."""
    if len(representative) == 0:
        return np.full(labels.shape, -1, dtype=np.int64), representative
    on = labels >= 0
    sizes = np.bincount(labels[on], minlength=len(representative))
    big = sizes >= min_hits
    new = np.full(len(representative), -1, dtype=np.int64)
    new[big] = np.arange(int(big.sum()))
    out = np.where(on, new[np.maximum(labels, 0)], -1)
    return out, representative[big]


class CondensationLoss(nn.Module):
    """Base of the one-shot losses: splits the network's output (``heads`` clustering-space
    blocks), selects the objects (``objects_of``), adds the track-parameter regression to the
    method's own ``terms``."""

    def __init__(self, cfg, heads: int = 1):
        super().__init__()
        self.cfg, self.heads = cfg, heads

    def terms(self, out: dict[str, torch.Tensor], obj: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, raw: torch.Tensor, event: Data) -> dict[str, torch.Tensor]:
        c = self.cfg
        out = split_outputs(raw.float(), c.space_dim, self.heads)
        is_object = objects_of(event, c.object_pt_min, c.object_min_hits)
        obj, k = object_index(event.particle_id, is_object)
        parts = self.terms(out, obj, k)
        parts["params"] = c.params_weight * track_parameter_loss(out["log_pt"], out["eta"], event, is_object)
        return parts


@dataclass
class OneShotConfig(CondensationConfig, SampledTrainingConfig):
    """A condensation stage: the network, which particles are objects, training, track selection."""
    object_pt_min: float = 0.0     # GeV: particles below it (and noise) are not objects to condense
    object_min_hits: int = 3
    params_weight: float = 0.1     # weight of the (log pT, η) regression loss
    min_hits: int = 3              # shorter tracks are left unassigned ...
    min_pt: float = 0.0            # ... and so are tracks whose predicted pT (GeV) is lower
    edge_score_cut: float = 0.0    # > 0: pass messages only over edges scored >= this by ...
    score_field: str | None = None  # ... this field (None: the last edge classifier's score)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.edge_score_cut <= 1.0:
            raise ValueError("key 'edge_score_cut': must lie in [0, 1]")


class MappedEvents(Sequence):
    """``fn`` applied to each event of ``events`` as it is read."""

    def __init__(self, events: Sequence[Data], fn):
        self.events, self.fn = events, fn

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i):
        return self.fn(self.events[i])


class CondensationStage(LightningStage, TrackBuilder):
    """A one-shot track builder: ``CondensationGNN`` over the constructed graph, a loss on its
    per-hit outputs, and ``tracks(outputs)`` to labels and representatives.  Adds ``track_id`` and,
    per hit, its track's parameters ``track_pt``, ``track_eta`` (predicted at the representative)."""
    needs_edge_scores = False
    heads: ClassVar[int] = 1                        # clustering-space blocks per hit
    Loss: ClassVar[type[CondensationLoss]]          # the method's loss

    def requires(self) -> tuple[str, ...]:
        return ("graph_construction",) + (("edge_classification",) if self.config.edge_score_cut > 0 else ())

    def message_graph(self, event: Data) -> Data:
        """The graph the network passes messages over: with ``edge_score_cut`` > 0 only the edges
        an edge classifier scored at least that high (gnn_tracking's edge classifier, then
        condensation), else the whole constructed graph."""
        if self.config.edge_score_cut <= 0:
            return event
        return select_edges(copy.copy(event), event[self.config.score_field] >= self.config.edge_score_cut)

    def fit(self, train, val) -> dict:
        return super().fit(MappedEvents(train, self.message_graph), MappedEvents(val, self.message_graph))

    def tracks(self, out: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def build(self, in_dim: int) -> CondensationModule:
        net = CondensationGNN(in_dim, len(EDGE_FEATURES), self.config, heads=self.heads)
        return CondensationModule(net, self.Loss(self.config, self.heads), self.config)

    def outputs(self, event: Data) -> dict[str, torch.Tensor]:
        with autocast_context(self.config.precision, self.device):
            raw = self.model.net(event.x, event.edge_index, edge_features(event, event.edge_index), event.region)
        return split_outputs(raw.float().cpu(), self.config.space_dim, self.heads)

    def infer(self, event: Data) -> Data:
        out = self.outputs(self.message_graph(event).to(self.device))
        event = event.cpu()
        labels, rep = keep_tracks(*self.tracks(out), self.config.min_hits)
        if self.config.min_pt > 0 and rep.size:
            low = (torch.exp(out["log_pt"])[torch.as_tensor(rep)] < self.config.min_pt).numpy()
            labels, rep = keep_tracks(np.where((labels >= 0) & low[np.maximum(labels, 0)], -1, labels), rep, 1)
        event.track_id = torch.as_tensor(labels, dtype=torch.long)
        pt = torch.exp(out["log_pt"])[torch.as_tensor(rep, dtype=torch.long)]
        eta = out["eta"][torch.as_tensor(rep, dtype=torch.long)]
        on = event.track_id >= 0
        event.track_pt = torch.where(on, pt[event.track_id.clamp_min(0)] if rep.size else 0.0, float("nan"))
        event.track_eta = torch.where(on, eta[event.track_id.clamp_min(0)] if rep.size else 0.0, float("nan"))
        return event
