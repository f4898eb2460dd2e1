"""Edge-level metrics of a scored graph: efficiency, purity, ROC AUC, per detector region."""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from trkx.event import edge_truth


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s))
    # average ranks over ties
    uniq, start, counts = np.unique(s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def edge_counts(event: Data, keep: torch.Tensor | None, pt_min: float, min_hits: int) -> dict:
    """Counts behind edge efficiency and purity for one event (summed over events by the caller).

    Truth edges are consecutive hits of one particle (``track_edges``), found in either direction.
    all:    efficiency = kept truth edges / all truth edges of the event;
            purity = kept edges joining hits of one particle / kept edges.
    target: truth edges of particles with pT >= pt_min and >= min_hits hits;
            efficiency = kept target truth edges / target truth edges;
            purity = kept edges joining hits of one target particle / kept edges, not counting
            edges between hits of one non-target particle (they are neither signal nor fake)."""

    ei = event.edge_index
    keep = torch.ones(ei.shape[1], dtype=torch.bool) if keep is None else keep
    n = event.num_nodes
    same = edge_truth(event, ei)
    inv = torch.unique(event.particle_id, return_inverse=True)[1]
    hits_of = torch.bincount(inv)[inv]
    good_hit = (event.pt >= pt_min) & (hits_of >= min_hits) & (event.particle_id != 0)
    tt = event.track_edges
    kept = ei[:, keep]
    keys = torch.cat([kept[0] * n + kept[1], kept[1] * n + kept[0]])
    found = torch.isin(tt[0] * n + tt[1], keys)
    t_good = good_hit[tt[0]]
    signal = same & good_hit[ei[0]]
    nontarget = same & ~good_hit[ei[0]]
    region = event.region
    out = {"truth": int(tt.shape[1]), "truth_found": int(found.sum()), "kept": int(keep.sum()),
           "same_kept": int((same & keep).sum()),
           "target_truth": int(t_good.sum()), "target_found": int((found & t_good).sum()),
           "target_kept": int((signal & keep).sum()), "nontarget_kept": int((nontarget & keep).sum()),
           "per_region": {}}
    n_regions = int(region.max()) + 1 if region.numel() else 0
    for a in range(n_regions):
        in_r = (region[ei[0]] == a) & (region[ei[1]] == a)
        t_in = t_good & (region[tt[0]] == a) & (region[tt[1]] == a)
        out["per_region"][a] = {"kept": int((keep & in_r & ~nontarget).sum()),
                                "target_kept": int((signal & keep & in_r).sum()),
                                "target_truth": int(t_in.sum()), "target_found": int((found & t_in).sum())}
    return out


def summarize_edge_counts(counts: list[dict], scores=None, labels=None, region_names=None) -> dict:
    tot = lambda k: sum(c[k] for c in counts)  # noqa: E731
    ratio = lambda a, b: float(a / b) if b else float("nan")  # noqa: E731
    out = {
        "all": {"efficiency": ratio(tot("truth_found"), tot("truth")), "purity": ratio(tot("same_kept"), tot("kept")),
                "edges_per_event": tot("kept") / max(len(counts), 1)},
        "target": {"efficiency": ratio(tot("target_found"), tot("target_truth")),
                   "purity": ratio(tot("target_kept"), tot("kept") - tot("nontarget_kept"))},
    }
    regions = sorted({r for c in counts for r in c["per_region"]})
    per = {}
    for r in regions:
        g = lambda k: sum(c["per_region"].get(r, {}).get(k, 0) for c in counts)  # noqa: E731
        name = region_names[r] if region_names and r < len(region_names) else str(r)
        per[name] = {"efficiency": ratio(g("target_found"), g("target_truth")),
                     "purity": ratio(g("target_kept"), g("kept"))}
    out["per_region"] = per
    if scores is not None and len(scores):
        out["roc_auc"] = roc_auc(np.concatenate(labels), np.concatenate(scores))
    return out


def edge_efficiency_purity(event: Data, keep: torch.Tensor | None = None, pt_min: float = 1.0) -> dict:
    """Truth-graph efficiency (track edges of pT > pt_min particles found, either direction) and
    purity (kept edges joining hits of one particle) of ``event.edge_index[:, keep]``; a summary of
    ``edge_counts`` for training logs."""
    c = edge_counts(event, keep, pt_min, min_hits=0)
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {"efficiency": ratio(c["target_found"], c["target_truth"]), "purity": ratio(c["same_kept"], c["kept"]),
            "edges": c["kept"], "truth_edges": c["target_truth"], "found_truth_edges": c["target_found"]}
