"""Evaluation of a pipeline run: edge metrics per scoring stage, track metrics recomputed from the
written ``tracks/*.csv`` and the event truth, TrackML score and V-scores -> ``metrics.json``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from trkx.event import REGION_NAMES
from trkx.event import track_edge_truth
from trkx.metrics import (STYLES, TargetSelection, edge_counts, efficiency_vs, summarize_edge_counts,
                          track_metrics, trackml_score, v_score)
from trkx.storage import load_event, write_json

PT_BINS = np.array([0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0])
ETA_BINS = np.linspace(-4.0, 4.0, 17)


def truth_table(event_paths: list[Path]) -> pd.DataFrame:
    """Per-hit truth of the test events: event_id, hit_id, particle_id, pt, eta, weight."""
    frames = []
    for p in event_paths:
        e = load_event(p)
        frames.append(pd.DataFrame({"event_id": int(e.event_id), "hit_id": e.hit_id.numpy(),
                                    "particle_id": e.particle_id.numpy(), "pt": e.pt.numpy(),
                                    "eta": e.eta.numpy(), "weight": e.weight.numpy()}))
    return pd.concat(frames, ignore_index=True)


def read_tracks(tracks_dir: Path, event_ids: list[int]) -> pd.DataFrame:
    frames = []
    for eid in event_ids:
        path = tracks_dir / f"event{eid}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: track file not found (run the pipeline first)")
        df = pd.read_csv(path)
        frames.append(df.assign(event_id=eid))
    return pd.concat(frames, ignore_index=True)


def track_level(truth: pd.DataFrame, tracks: pd.DataFrame, eval_cfg) -> dict:
    """Every figure of the track level, from truth + tracks tables."""
    hits = truth.merge(tracks, on=["event_id", "hit_id"], how="left", validate="one_to_one")
    hits["track_id"] = hits.track_id.fillna(-1).astype(np.int64)
    target = TargetSelection(eval_cfg.pt_min, eval_cfg.min_hits, eval_cfg.eta_max)
    out = {}
    for style in STYLES:
        m = track_metrics(hits, style, eval_cfg.matching_fraction, target, eval_cfg.min_track_hits)
        targets = m.pop("_targets")
        if style == eval_cfg.matching:
            out["efficiency_vs_pt"] = efficiency_vs(
                track_metrics(hits, style, eval_cfg.matching_fraction,
                              TargetSelection(0.0, eval_cfg.min_hits, eval_cfg.eta_max),
                              eval_cfg.min_track_hits)["_targets"], "pt", PT_BINS)
            out["efficiency_vs_eta"] = efficiency_vs(targets, "eta", ETA_BINS)
        out.setdefault("styles", {})[style] = m
    chosen = out["styles"][eval_cfg.matching]
    scores, vs, vws = [], [], []
    for eid, ev in hits.groupby("event_id"):
        scores.append(trackml_score(ev[["hit_id", "particle_id", "weight"]], ev[["hit_id", "track_id"]]))
        vs.append(v_score(ev.particle_id, ev.track_id))
        vws.append(v_score(ev.particle_id, ev.track_id, ev.weight) if ev.weight.sum() > 0 else vs[-1])
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    out.update({
        "matching": eval_cfg.matching,
        "track_efficiency": chosen["efficiency"], "fake_rate": chosen["fake_rate"],
        "duplicate_rate": chosen["duplicate_rate"],
        "trackml_score": float(np.mean(scores)), "trackml_score_per_event": scores,
        "v_score": {k: mean(vs, k) for k in vs[0]},
        "v_score_weighted": {k: mean(vws, k) for k in vws[0]},
    })
    return out


def edge_level(pipe, outputs) -> dict:
    """Edge efficiency / purity (all and target edges), ROC AUC (consecutive truth edges vs the
    rest) and per-region figures per stage; definitions in ``trkx.metrics.edges.edge_counts``."""
    cfg = pipe.config.evaluation
    result = {}
    for stage, out in zip(pipe.stages, outputs[1:]):
        counts, scores, labels = [], [], []
        for path in out.paths["test"]:
            e = load_event(path)
            if "edge_index" not in e:
                break
            keep = stage.edge_keep(e)
            counts.append(edge_counts(e, keep, cfg.pt_min, cfg.min_hits))
            if stage.role == "edge_classification" and stage.score_field in e:
                scores.append(e[stage.score_field].numpy())
                labels.append(track_edge_truth(e).numpy())
        if counts and stage.role != "track_building":
            result[stage.name] = summarize_edge_counts(counts, scores or None, labels or None, REGION_NAMES)
    return result


def evaluate(pipe, outputs) -> dict:
    """Compute every metric of a finished run and write ``metrics.json``."""
    test_paths = outputs[0].paths["test"]
    truth = truth_table(test_paths)
    event_ids = sorted(truth.event_id.unique().tolist())
    metrics = {"events": len(event_ids), "edge": edge_level(pipe, outputs),
               "target": {"pt_min": pipe.config.evaluation.pt_min, "min_hits": pipe.config.evaluation.min_hits}}
    tracks_dir = pipe.workdir / "tracks"
    if tracks_dir.is_dir():
        metrics.update(track_level(truth, read_tracks(tracks_dir, event_ids), pipe.config.evaluation))
    write_json(pipe.workdir / "metrics.json", finite_json(metrics))
    return metrics


def finite_json(obj):
    """JSON has no NaN: write null instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def headline(metrics: dict) -> str:
    if "track_efficiency" not in metrics:
        return "no tracks written (the pipeline has no track building stage)"
    t = metrics["target"]
    return (f"track efficiency ({metrics['matching']}, pT > {t['pt_min']} GeV, >= {t['min_hits']} hits): "
            f"{metrics['track_efficiency']:.4f}   fake rate: {metrics['fake_rate']:.4f}   "
            f"duplicate rate: {metrics['duplicate_rate']:.4f}   TrackML score: {metrics['trackml_score']:.4f}   "
            f"V-measure: {metrics['v_score']['v_measure']:.4f}")
