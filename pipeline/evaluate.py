"""Evaluation of a pipeline run: edge metrics per scoring stage, track metrics recomputed from the
written ``tracks/*.csv`` and the event truth, TrackML score and V-scores -> ``metrics.json``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from trkx.event import track_edge_truth
from trkx.io.tracks import find_track_file, read_track_file
from trkx.metrics import (STYLES, TargetSelection, edge_counts, efficiency_vs, summarize_edge_counts,
                          track_metrics, trackml_score, v_score)
from trkx.provenance import stamped
from trkx.storage import load_event, write_json

PT_BINS = np.array([0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0])
ETA_BINS = np.linspace(-4.0, 4.0, 17)
PROD_R_BINS = np.array([0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0])   # mm, production radius
# the target selection HEPT and ACORN quote on TrackML events
FIELD_CUT = {"pt_min": 0.9, "eta_max": 4.0}


def event_truth(e) -> pd.DataFrame:
    """Per-hit truth of one event graph: event_id, hit_id, particle_id, pt, eta, weight and, where
    the graph has them, hard_scatter and prod_r (graphs cached before they existed have not)."""
    origin = {k: e[k].numpy() for k in ("hard_scatter", "prod_r") if k in e}
    return pd.DataFrame({"event_id": int(e.event_id), "hit_id": e.hit_id.numpy(), "particle_id": e.particle_id.numpy(),
                         "pt": e.pt.numpy(), "eta": e.eta.numpy(), "weight": e.weight.numpy(), **origin})


def truth_table(event_paths: list[Path]) -> pd.DataFrame:
    """Per-hit truth of the test events (``event_truth`` of each)."""
    return pd.concat([event_truth(load_event(p)) for p in event_paths], ignore_index=True)


def read_tracks(tracks_dir: Path, event_ids: list[int]) -> pd.DataFrame:
    """The hit -> track maps of ``event_ids`` from ``tracks_dir`` (any format of ``trkx.io.tracks``)."""
    frames = []
    for eid in event_ids:
        df = read_track_file(find_track_file(tracks_dir, eid))[["hit_id", "track_id"]]
        frames.append(df.assign(event_id=eid))
    return pd.concat(frames, ignore_index=True)


def track_level(truth: pd.DataFrame, tracks: pd.DataFrame, eval_cfg, stages=()) -> dict:
    """Every figure of the track level, from truth + tracks tables, with the extra figures the
    chain's ``stages`` (the data source among them) declare (``Stage.extra_metrics``)."""
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
            out.update(origin_figures(hits, targets, eval_cfg, style))
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
    extra = {k: v for s in stages for k, v in s.extra_metrics(hits, eval_cfg).items()}
    return {**out, **extra, "extra": sorted(extra)}


def origin_figures(hits: pd.DataFrame, targets: pd.DataFrame, eval_cfg, style: str) -> dict:
    """The figures the field quotes beside the configured ones: efficiency at the HEPT / ACORN
    target cut (pT > 0.9 GeV, |eta| < 4, same hits and matching), of hard-scatter target particles
    alone, and versus the production radius, where the truth has these fields."""
    field = track_metrics(hits, style, eval_cfg.matching_fraction,
                          TargetSelection(FIELD_CUT["pt_min"], eval_cfg.min_hits, FIELD_CUT["eta_max"]),
                          eval_cfg.min_track_hits)
    out = {"field_cut": {**FIELD_CUT, "min_hits": eval_cfg.min_hits, "efficiency": field["efficiency"],
                         "n_target_particles": field["n_target_particles"], "fake_rate": field["fake_rate"]}}
    if "hard_scatter" in targets.columns and targets.hard_scatter.astype(bool).any():
        hs = targets[targets.hard_scatter.astype(bool)]
        out["hard_scatter"] = {"efficiency": float(hs.matched.mean()), "n_target_particles": int(len(hs))}
    if "prod_r" in targets.columns:
        out["efficiency_vs_prod_r"] = efficiency_vs(targets, "prod_r", PROD_R_BINS)
    return out


def edge_level(pipe, outputs) -> dict:
    """Edge efficiency / purity (all and target edges), ROC AUC (consecutive truth edges vs the
    rest) and per-region figures per stage; definitions in ``trkx.metrics.edges.edge_counts``."""
    cfg = pipe.config.evaluation
    regions = tuple(getattr(pipe.data.config, "regions", {}))   # the data config's region names
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
            result[stage.name] = summarize_edge_counts(counts, scores or None, labels or None, regions)
    return result


def track_parameter_resolution(event_paths: list[Path], eval_cfg) -> dict | None:
    """pT and η resolution of the track parameters a one-shot stage predicts (``track_pt``,
    ``track_eta``), on tracks whose majority particle (over half their hits) is a target particle:
    the half-width of the central 68% of (pT_pred - pT) / pT and of η_pred - η, with the medians."""
    rel_pt, d_eta = [], []
    for path in event_paths:
        e = load_event(path)
        if "track_pt" not in e:
            return None
        on = e.track_id >= 0
        if not bool(on.any()):
            continue
        df = pd.DataFrame({"t": e.track_id[on].numpy(), "p": e.particle_id[on].numpy()})
        counts = df.groupby(["t", "p"]).size().rename("n").reset_index()
        size = df.groupby("t").size()
        top = counts.sort_values(["t", "n"], ascending=[True, False]).drop_duplicates("t")
        top = top[(top.n > 0.5 * size.loc[top.t].to_numpy()) & (top.p != 0)]
        pid = e.particle_id.numpy()
        first_hit = pd.Series(np.arange(pid.size), index=pid).groupby(level=0).first()
        hits_of = pd.Series(pid).value_counts()
        rows = first_hit.loc[top.p].to_numpy()
        pt, eta = e.pt.numpy()[rows], e.eta.numpy()[rows]
        target = (pt >= eval_cfg.pt_min) & (hits_of.loc[top.p].to_numpy() >= eval_cfg.min_hits) & \
                 (np.abs(eta) <= eval_cfg.eta_max)
        first_of_track = pd.Series(np.flatnonzero(on.numpy()), index=e.track_id[on].numpy()).groupby(level=0).first()
        at = first_of_track.loc[top.t].to_numpy()
        rel_pt.append(((e.track_pt.numpy()[at] - pt) / pt)[target])
        d_eta.append((e.track_eta.numpy()[at] - eta)[target])
    rel_pt = np.concatenate(rel_pt) if rel_pt else np.zeros(0)
    d_eta = np.concatenate(d_eta) if d_eta else np.zeros(0)
    if rel_pt.size == 0:
        return {"tracks": 0}          # no track of a target particle: no resolution to quote
    half68 = lambda v: float((np.percentile(v, 84) - np.percentile(v, 16)) / 2) if v.size else float("nan")  # noqa: E731
    return {"tracks": int(rel_pt.size), "pt_rel_resolution": half68(rel_pt), "pt_rel_median": float(np.median(rel_pt)),
            "eta_resolution": half68(d_eta), "eta_median": float(np.median(d_eta))}


def evaluate(pipe, outputs) -> dict:
    """Compute every metric of a finished run and write ``metrics.json``."""
    test_paths = outputs[0].paths["test"]
    truth = truth_table(test_paths)
    event_ids = sorted(truth.event_id.unique().tolist())
    metrics = {"events": len(event_ids), "edge": edge_level(pipe, outputs),
               "target": {"pt_min": pipe.config.evaluation.pt_min, "min_hits": pipe.config.evaluation.min_hits}}
    tracks_dir = pipe.workdir / "tracks"
    if tracks_dir.is_dir():
        metrics.update(track_level(truth, read_tracks(tracks_dir, event_ids), pipe.config.evaluation,
                                   [pipe.data] + pipe.stages))
    params = track_parameter_resolution(outputs[-1].paths["test"], pipe.config.evaluation)
    if params is not None:
        metrics["track_parameters"] = params
    from trkx.runner import fingerprints
    metrics = stamped(metrics, pipe.path, fingerprints(outputs))
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


def extra_summaries(metrics: dict) -> list[str]:
    """The summary lines of the figures stages declared (``Stage.extra_metrics``)."""
    return [metrics[k]["summary"] for k in metrics.get("extra", []) if metrics[k].get("summary")]


def headline(metrics: dict) -> str:
    if "track_efficiency" not in metrics:
        return "no tracks written (the pipeline has no track building stage)"
    t = metrics["target"]
    line = (f"track efficiency ({metrics['matching']}, pT > {t['pt_min']} GeV, >= {t['min_hits']} hits): "
            f"{metrics['track_efficiency']:.4f}   fake rate: {metrics['fake_rate']:.4f}   "
            f"duplicate rate: {metrics['duplicate_rate']:.4f}   TrackML score: {metrics['trackml_score']:.4f}   "
            f"V-measure: {metrics['v_score']['v_measure']:.4f}")
    for summary in extra_summaries(metrics):
        line += "\n" + summary
    p = metrics.get("track_parameters")
    if p and p.get("tracks"):
        line += (f"\ntrack parameters ({p['tracks']} tracks of target particles): pT resolution "
                 f"{p['pt_rel_resolution']:.4f} (relative, 68% half-width), eta resolution {p['eta_resolution']:.4f}")
    return line
